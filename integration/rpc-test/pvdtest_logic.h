/* pvdtest: shared request generator, reference computation and comparison (pvdtest_logic.c). */
#ifndef PVDTEST_LOGIC_H
#define PVDTEST_LOGIC_H
#include <stddef.h>

/* Number of request variants the tests send (0 .. PVDTEST_VARIANTS-1). */
#define PVDTEST_VARIANTS 3

void pvdtest_make_request(pvd_request *req, int variant);
void pvdtest_compute(const pvd_request *req, pvd_response *out);
int pvdtest_equal(const pvd_response *a, const pvd_response *b, char *why, size_t why_len);
#endif
