/*
 * A C client of the pvd master, built from mapping/master.x with rpcgen and libtirpc:
 *
 *     rpcgen -N master.x
 *     gcc -I/usr/include/tirpc -o pvd_master_client pvd_master_client.c master_clnt.c \
 *         master_xdr.c -ltirpc
 *
 * Usage: pvd_master_client HOST[:PORT] COMMAND [ARGS]
 *   status | servers | vdisks
 *   register PORTAL IQN LUN CAPACITY BLOCK_SIZE
 *   allocate NAME SIZE EXTENT_SIZE STRIPES STRIPE_UNIT REPLICAS
 *   lookup NAME
 *   release NAME
 * Without a port the master is found through rpcbind. Prints one line per item, key=value.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <rpc/rpc.h>
#include "master.h"

static CLIENT *connect_master(const char *target)
{
    char host[256];
    const char *colon = strrchr(target, ':');
    if (!colon) {
        CLIENT *c = clnt_create(target, PVD_MASTER_PROG, PVD_MASTER_V1, "tcp");
        if (!c) {
            clnt_pcreateerror(target);
            exit(2);
        }
        return c;
    }
    size_t n = (size_t)(colon - target);
    if (n >= sizeof(host)) {
        fprintf(stderr, "host too long\n");
        exit(2);
    }
    memcpy(host, target, n);
    host[n] = 0;
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fprintf(stderr, "bad IPv4 address %s\n", host);
        exit(2);
    }
    int sock = RPC_ANYSOCK;
    CLIENT *c = clnttcp_create(&sin, PVD_MASTER_PROG, PVD_MASTER_V1, &sock, 0, 0);
    if (!c) {
        clnt_pcreateerror(target);
        exit(2);
    }
    return c;
}

static void print_map(const pvd_vdisk_map *m)
{
    printf("vdisk id=%llu name=%s size=%llu extent_size=%llu stripes=%u stripe_unit=%llu "
           "replicas=%u extents=%u\n",
           (unsigned long long)m->vdisk_id, m->name, (unsigned long long)m->geometry.size,
           (unsigned long long)m->geometry.extent_size, m->geometry.stripes,
           (unsigned long long)m->geometry.stripe_unit, m->geometry.replicas,
           m->extents.extents_len);
    for (u_int i = 0; i < m->extents.extents_len; i++) {
        const pvd_extent *e = &m->extents.extents_val[i];
        for (u_int k = 0; k < e->replicas.replicas_len; k++) {
            const pvd_replica *r = &e->replicas.replicas_val[k];
            printf("extent index=%llu replica=%u server=%u portal=%s iqn=%s lun=%llu "
                   "start_lba=%llu block_size=%u\n",
                   (unsigned long long)e->index, k, r->server_id, r->portal, r->iqn,
                   (unsigned long long)r->lun, (unsigned long long)r->start_lba, r->block_size);
        }
    }
}

static int fail(CLIENT *c, const char *what)
{
    clnt_perror(c, what);
    return 3;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s HOST[:PORT] status|servers|vdisks|register|allocate|lookup|release ...\n",
                argv[0]);
        return 2;
    }
    CLIENT *c = connect_master(argv[1]);
    const char *cmd = argv[2];
    if (strcmp(cmd, "status") == 0) {
        pvd_status_res *r = pvd_status_1(c);
        if (!r)
            return fail(c, "status");
        if (r->status != PVD_OK) {
            printf("error status=%d message=%s\n", r->status, r->pvd_status_res_u.message);
            return 1;
        }
        pvd_status_info *s = &r->pvd_status_res_u.info;
        printf("status extent_size=%llu servers=%llu extents_total=%llu extents_free=%llu "
               "extents_used=%llu vdisks=%llu\n",
               (unsigned long long)s->extent_size, (unsigned long long)s->servers,
               (unsigned long long)s->extents_total, (unsigned long long)s->extents_free,
               (unsigned long long)s->extents_used, (unsigned long long)s->vdisks);
    } else if (strcmp(cmd, "servers") == 0) {
        pvd_list_servers_res *r = pvd_list_servers_1(c);
        if (!r)
            return fail(c, "list_servers");
        if (r->status != PVD_OK) {
            printf("error status=%d message=%s\n", r->status, r->pvd_list_servers_res_u.message);
            return 1;
        }
        for (u_int i = 0; i < r->pvd_list_servers_res_u.servers.servers_len; i++) {
            pvd_server *s = &r->pvd_list_servers_res_u.servers.servers_val[i];
            printf("server id=%u portal=%s iqn=%s lun=%llu capacity=%llu block_size=%u "
                   "extents_total=%llu extents_free=%llu\n",
                   s->id, s->info.portal, s->info.iqn, (unsigned long long)s->info.lun,
                   (unsigned long long)s->info.capacity, s->info.block_size,
                   (unsigned long long)s->extents_total, (unsigned long long)s->extents_free);
        }
    } else if (strcmp(cmd, "vdisks") == 0) {
        pvd_list_vdisks_res *r = pvd_list_vdisks_1(c);
        if (!r)
            return fail(c, "list_vdisks");
        if (r->status != PVD_OK) {
            printf("error status=%d message=%s\n", r->status, r->pvd_list_vdisks_res_u.message);
            return 1;
        }
        for (u_int i = 0; i < r->pvd_list_vdisks_res_u.vdisks.vdisks_len; i++) {
            pvd_vdisk_summary *v = &r->pvd_list_vdisks_res_u.vdisks.vdisks_val[i];
            printf("vdisk id=%llu name=%s size=%llu extents=%llu\n",
                   (unsigned long long)v->vdisk_id, v->name,
                   (unsigned long long)v->geometry.size,
                   (unsigned long long)v->extents_allocated);
        }
    } else if (strcmp(cmd, "register") == 0 && argc == 8) {
        pvd_server_info a;
        a.portal = argv[3];
        a.iqn = argv[4];
        a.lun = strtoull(argv[5], NULL, 0);
        a.capacity = strtoull(argv[6], NULL, 0);
        a.block_size = (u_int)strtoul(argv[7], NULL, 0);
        pvd_register_res *r = pvd_register_server_1(a, c);
        if (!r)
            return fail(c, "register_server");
        if (r->status != PVD_OK) {
            printf("error status=%d message=%s\n", r->status, r->pvd_register_res_u.message);
            return 1;
        }
        printf("registered server=%u\n", r->pvd_register_res_u.server_id);
    } else if (strcmp(cmd, "allocate") == 0 && argc == 9) {
        pvd_allocate_args a;
        a.name = argv[3];
        a.geometry.size = strtoull(argv[4], NULL, 0);
        a.geometry.extent_size = strtoull(argv[5], NULL, 0);
        a.geometry.stripes = (u_int)strtoul(argv[6], NULL, 0);
        a.geometry.stripe_unit = strtoull(argv[7], NULL, 0);
        a.geometry.replicas = (u_int)strtoul(argv[8], NULL, 0);
        a.extents.extents_len = 0;
        a.extents.extents_val = NULL;
        pvd_map_res *r = pvd_allocate_1(a, c);
        if (!r)
            return fail(c, "allocate");
        if (r->status != PVD_OK) {
            printf("error status=%d message=%s\n", r->status, r->pvd_map_res_u.message);
            return 1;
        }
        print_map(&r->pvd_map_res_u.map);
    } else if ((strcmp(cmd, "lookup") == 0 || strcmp(cmd, "release") == 0) && argc == 4) {
        pvd_vdisk_ref ref;
        ref.vdisk_id = 0;
        ref.name = argv[3];
        if (cmd[0] == 'l') {
            pvd_map_res *r = pvd_lookup_1(ref, c);
            if (!r)
                return fail(c, "lookup");
            if (r->status != PVD_OK) {
                printf("error status=%d message=%s\n", r->status, r->pvd_map_res_u.message);
                return 1;
            }
            print_map(&r->pvd_map_res_u.map);
        } else {
            pvd_release_res *r = pvd_release_1(ref, c);
            if (!r)
                return fail(c, "release");
            if (r->status != PVD_OK) {
                printf("error status=%d message=%s\n", r->status, r->pvd_release_res_u.message);
                return 1;
            }
            printf("released=%d\n", r->pvd_release_res_u.released);
        }
    } else {
        fprintf(stderr, "unknown command or wrong argument count: %s\n", cmd);
        return 2;
    }
    clnt_destroy(c);
    return 0;
}
