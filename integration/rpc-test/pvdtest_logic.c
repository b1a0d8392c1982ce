/*
 * pvdtest: the request generator, the reference computation and the comparison shared by the
 * C client and server (see pvdtest.x for the rules; integration/tests/rpc_rpcgen.rs mirrors
 * them in Rust).
 */
#include "pvdtest.h"
#include "pvdtest_logic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_str(const char *s)
{
	size_t n = strlen(s);
	char *d = malloc(n + 1);
	memcpy(d, s, n + 1);
	return d;
}

void pvdtest_make_request(pvd_request *req, int v)
{
	u_int i, count, nodes, blob_len;
	node **link;

	memset(req, 0, sizeof(*req));
	req->name = dup_str(v == 0 ? "interop" : v == 1 ? "" : "pvd-rust-and-c");

	count = v == 1 ? 0 : 10 + v;
	req->numbers.numbers_len = count;
	req->numbers.numbers_val = calloc(count + 1, sizeof(int));
	for (i = 0; i < count; i++)
		req->numbers.numbers_val[i] = ((int)i * 7919 - 500) * (v + 1);

	if (v % 3 == 0) {
		req->s.kind = SHAPE_RECT;
		req->s.shape_u.r.width = 3 + v;
		req->s.shape_u.r.height = -4;
	} else if (v % 3 == 1) {
		req->s.kind = SHAPE_CIRCLE;
		req->s.shape_u.radius = 17;
	} else {
		req->s.kind = SHAPE_NONE;
	}

	nodes = v == 1 ? 0 : 3 + v;
	link = &req->list;
	for (i = 0; i < nodes; i++) {
		char name[32];
		node *n = calloc(1, sizeof(node));
		snprintf(name, sizeof(name), "node-%u", i);
		n->name = dup_str(name);
		n->value = (quad_t)(i + 1) * 1000000007LL - v;
		*link = n;
		link = &n->next;
	}

	blob_len = v == 0 ? 1048576 + 3 : v == 1 ? 0 : 1000;
	req->blob.blob_len = blob_len;
	req->blob.blob_val = malloc(blob_len + 1);
	for (i = 0; i < blob_len; i++)
		req->blob.blob_val[i] = (char)((i * 31 + 7 + (u_int)v) & 0xff);

	req->flag = v % 2 == 0;
	req->ratio = 0.375 + v;
	req->big = 0xFEDCBA9876543210ULL + (u_quad_t)v;
}

void pvdtest_compute(const pvd_request *req, pvd_response *out)
{
	u_int i, n;
	const node *p;
	quad_t sum = 0;
	u_int checksum = 0;

	memset(out, 0, sizeof(*out));
	out->greeting = malloc(strlen(req->name) + 8);
	strcpy(out->greeting, "hello, ");
	strcat(out->greeting, req->name);

	for (i = 0; i < req->numbers.numbers_len; i++)
		sum = (quad_t)((u_quad_t)sum + (u_quad_t)(quad_t)req->numbers.numbers_val[i]);
	n = 0;
	for (p = req->list; p; p = p->next) {
		node *copy = calloc(1, sizeof(node));
		size_t k;
		sum = (quad_t)((u_quad_t)sum + (u_quad_t)p->value);
		copy->name = dup_str(p->name);
		for (k = 0; copy->name[k]; k++)
			if (copy->name[k] >= 'a' && copy->name[k] <= 'z')
				copy->name[k] = (char)(copy->name[k] - 'a' + 'A');
		copy->value = p->value;
		copy->next = out->list_reversed;
		out->list_reversed = copy;
		n++;
	}
	out->sum = sum;
	out->list_len = n;

	out->doubled.kind = req->s.kind;
	if (req->s.kind == SHAPE_CIRCLE) {
		out->doubled.shape_u.radius = req->s.shape_u.radius * 2u;
	} else if (req->s.kind == SHAPE_RECT) {
		out->doubled.shape_u.r.width = (int)((u_int)req->s.shape_u.r.width * 2u);
		out->doubled.shape_u.r.height = (int)((u_int)req->s.shape_u.r.height * 2u);
	}

	out->blob_len = req->blob.blob_len;
	out->blob_reversed.blob_reversed_len = req->blob.blob_len;
	out->blob_reversed.blob_reversed_val = malloc(req->blob.blob_len + 1);
	for (i = 0; i < req->blob.blob_len; i++) {
		unsigned char b = (unsigned char)req->blob.blob_val[i];
		checksum += (u_int)b * (i % 251 + 1);
		out->blob_reversed.blob_reversed_val[req->blob.blob_len - 1 - i] = (char)b;
	}
	out->blob_checksum = checksum;

	out->flag = !req->flag;
	out->ratio = req->ratio * 2;
	out->big = req->big ^ 0xFFFFFFFFFFFFFFFFULL;
}

#define FAIL(...)                                  \
	do {                                           \
		snprintf(why, why_len, __VA_ARGS__);       \
		return 0;                                  \
	} while (0)

int pvdtest_equal(const pvd_response *a, const pvd_response *b, char *why, size_t why_len)
{
	const node *p, *q;

	if (strcmp(a->greeting, b->greeting) != 0)
		FAIL("greeting %s != %s", a->greeting, b->greeting);
	if (a->sum != b->sum)
		FAIL("sum %lld != %lld", (long long)a->sum, (long long)b->sum);
	if (a->doubled.kind != b->doubled.kind)
		FAIL("shape kind %d != %d", a->doubled.kind, b->doubled.kind);
	if (a->doubled.kind == SHAPE_CIRCLE && a->doubled.shape_u.radius != b->doubled.shape_u.radius)
		FAIL("radius %u != %u", a->doubled.shape_u.radius, b->doubled.shape_u.radius);
	if (a->doubled.kind == SHAPE_RECT &&
	    (a->doubled.shape_u.r.width != b->doubled.shape_u.r.width ||
	     a->doubled.shape_u.r.height != b->doubled.shape_u.r.height))
		FAIL("rect differs");
	if (a->list_len != b->list_len)
		FAIL("list_len %u != %u", a->list_len, b->list_len);
	if (a->blob_len != b->blob_len)
		FAIL("blob_len %u != %u", a->blob_len, b->blob_len);
	if (a->blob_checksum != b->blob_checksum)
		FAIL("blob_checksum %u != %u", a->blob_checksum, b->blob_checksum);
	if (a->blob_reversed.blob_reversed_len != b->blob_reversed.blob_reversed_len ||
	    memcmp(a->blob_reversed.blob_reversed_val, b->blob_reversed.blob_reversed_val,
		   a->blob_reversed.blob_reversed_len) != 0)
		FAIL("blob_reversed differs");
	for (p = a->list_reversed, q = b->list_reversed; p && q; p = p->next, q = q->next)
		if (strcmp(p->name, q->name) != 0 || p->value != q->value)
			FAIL("list node %s/%lld != %s/%lld", p->name, (long long)p->value, q->name,
			     (long long)q->value);
	if (p || q)
		FAIL("list_reversed lengths differ");
	if (!a->flag != !b->flag)
		FAIL("flag %d != %d", a->flag, b->flag);
	if (a->ratio != b->ratio)
		FAIL("ratio %f != %f", a->ratio, b->ratio);
	if (a->big != b->big)
		FAIL("big %llx != %llx", (unsigned long long)a->big, (unsigned long long)b->big);
	return 1;
}
