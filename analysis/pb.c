/* SPDX-License-Identifier: MIT */
/*
 * pb - protobuf wire format and gRPC framing to JSON (see pb.h).
 *
 * References: protobuf encoding guide (varints, wire types 0 VARINT,
 * 1 I64, 2 LEN, 3/4 groups, 5 I32; zigzag; packed repeated fields),
 * google/protobuf/descriptor.proto (FileDescriptorSet = 1 file;
 * FileDescriptorProto 2 package, 4 message_type, 5 enum_type, 6 service;
 * DescriptorProto 1 name, 2 field, 3 nested_type, 4 enum_type;
 * FieldDescriptorProto 1 name, 3 number, 4 label, 5 type, 6 type_name;
 * EnumDescriptorProto 1 name, 2 value; EnumValueDescriptorProto 1 name,
 * 2 number; ServiceDescriptorProto 1 name, 2 method;
 * MethodDescriptorProto 1 name, 2 input_type, 3 output_type), protobuf's
 * JSON mapping (proto3 guide, "JSON Mapping": an enum value is its name,
 * a number the enum does not declare the integer), gRPC's
 * PROTOCOL-HTTP2.md (Length-Prefixed-Message).
 *
 * A message is read in two passes: the first validates and counts its
 * fields, the second collects them, sorted by field number (then by
 * position), so repeated occurrences of one number are adjacent and
 * become one JSON array. Nested messages recurse up to PB_MAX_DEPTH; all
 * fields of one conversion share a budget (PB_MAX_FIELDS).
 */
#include "analysis/pb.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/jsonw.h"
#include "common/mem.h"

#define PB_MAX_DEPTH	    32
#define PB_MAX_FIELDS	    (1u << 22) /* per conversion, all levels */
#define PB_MAX_SCHEMA	    (64u << 20)
#define PB_MAX_TYPES	    (1u << 20)
#define PB_MAX_GRPC_MSGS    (1u << 16)
#define PB_GRPC_INFLATE_MAX (16u << 20)

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

/* FieldDescriptorProto.Type */
enum {
	FT_DOUBLE = 1,
	FT_FLOAT = 2,
	FT_INT64 = 3,
	FT_UINT64 = 4,
	FT_INT32 = 5,
	FT_FIXED64 = 6,
	FT_FIXED32 = 7,
	FT_BOOL = 8,
	FT_STRING = 9,
	FT_GROUP = 10,
	FT_MESSAGE = 11,
	FT_BYTES = 12,
	FT_UINT32 = 13,
	FT_ENUM = 14,
	FT_SFIXED32 = 15,
	FT_SFIXED64 = 16,
	FT_SINT32 = 17,
	FT_SINT64 = 18,
};

struct pb_enum_value {
	int32_t number;
	uint32_t pos; /* declaration order: of numbers declared twice the first names */
	char *name;
};

struct pb_enum {
	char *full;		 /* "pkg.Msg.Kind" */
	struct pb_enum_value *v; /* sorted by number, then declaration */
	size_t nv, cv;
};

struct pb_field {
	uint32_t number;
	uint8_t type;
	bool repeated;
	char *name;
	char *type_name;	  /* ".pkg.Msg" / ".pkg.Enum" for messages and enums, else NULL */
	int32_t msg;		  /* resolved index of type_name, -1 */
	const struct pb_enum *en; /* resolved enum of type_name (TYPE_ENUM), NULL */
};

struct pb_type {
	char *full; /* "pkg.Msg" */
	struct pb_field *f;
	size_t nf, cf;
	const struct pb_schema *s;
	bool map_entry; /* MessageOptions.map_entry: the entry type of a map<K, V> field */
};

struct pb_method {
	char *path; /* "/pkg.Svc/Method" */
	char *in, *out;
	int32_t tin, tout;
};

struct pb_schema {
	struct pb_type *t;
	size_t nt, ct;
	struct pb_enum *e;
	size_t ne, ce;
	struct pb_method *m;
	size_t nm, cm;
};

/* ------------------------------------------------------------------ */
/* Wire reading                                                        */
/* ------------------------------------------------------------------ */

static bool rd_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	for (unsigned s = 0; s < 64 && *p < end; s += 7) {
		uint8_t b = *(*p)++;
		r |= (uint64_t)(b & 0x7f) << s;
		if (!(b & 0x80)) {
			*v = r;
			return true;
		}
	}
	return false;
}

/* One field: number, wire type, its varint / fixed value or its bytes. */
struct wf {
	uint32_t num;
	uint8_t wt;
	uint32_t pos;
	uint64_t v;
	const uint8_t *p;
	size_t len;
};

/* Read the field at *p; false when malformed (groups included: unsupported). */
static bool rd_field(const uint8_t **p, const uint8_t *end, struct wf *f)
{
	uint64_t tag;
	if (!rd_varint(p, end, &tag))
		return false;
	uint64_t num = tag >> 3;
	f->wt = (uint8_t)(tag & 7);
	if (num == 0 || num > 0x1fffffff)
		return false;
	f->num = (uint32_t)num;
	switch (f->wt) {
	case WT_VARINT:
		return rd_varint(p, end, &f->v);
	case WT_I64:
		if (end - *p < 8)
			return false;
		f->v = 0;
		for (int i = 7; i >= 0; i--)
			f->v = f->v << 8 | (*p)[i];
		*p += 8;
		return true;
	case WT_I32:
		if (end - *p < 4)
			return false;
		f->v = (uint64_t)(*p)[0] | (uint64_t)(*p)[1] << 8 | (uint64_t)(*p)[2] << 16 |
		       (uint64_t)(*p)[3] << 24;
		*p += 4;
		return true;
	case WT_LEN: {
		uint64_t n;
		if (!rd_varint(p, end, &n) || n > (uint64_t)(end - *p))
			return false;
		f->p = *p;
		f->len = (size_t)n;
		*p += n;
		return true;
	}
	default:
		return false; /* groups (deprecated) and invalid wire types */
	}
}

/* ------------------------------------------------------------------ */
/* To JSON                                                             */
/* ------------------------------------------------------------------ */

struct conv {
	struct dbuf *out;
	uint64_t fields; /* budget used */
};

static int conv_msg(struct conv *c, const uint8_t *d, size_t n, const struct pb_type *t, int depth);

static int cmp_wf(const void *a, const void *b)
{
	const struct wf *x = a, *y = b;
	if (x->num != y->num)
		return x->num < y->num ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static bool printable_utf8(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint8_t b = p[i];
		if (b < 0x80) {
			if ((b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b == 0x7f)
				return false;
			i++;
			continue;
		}
		size_t k = b >= 0xf0 && b < 0xf5   ? 4
			   : b >= 0xe0		   ? 3
			   : b >= 0xc2 && b < 0xe0 ? 2
						   : 0;
		if (!k || b >= 0xf5 || i + k > n)
			return false;
		for (size_t j = 1; j < k; j++)
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
		i += k;
	}
	return true;
}

static int put_double(struct dbuf *o, double d)
{
	char b[40];
	snprintf(b, sizeof(b), "%.15g", d);
	if (strtod(b, NULL) != d)
		snprintf(b, sizeof(b), "%.17g", d);
	return dbuf_puts(o, b);
}

static int put_float(struct dbuf *o, float f)
{
	char b[40];
	snprintf(b, sizeof(b), "%.7g", (double)f);
	if (strtof(b, NULL) != f)
		snprintf(b, sizeof(b), "%.9g", (double)f);
	return dbuf_puts(o, b);
}

static double as_double(uint64_t v)
{
	double d;
	memcpy(&d, &v, 8);
	return d;
}

static float as_float(uint32_t v)
{
	float f;
	memcpy(&f, &v, 4);
	return f;
}

/* A value without a schema: guess as protoc --decode_raw does. */
static int put_raw(struct conv *c, const struct wf *f, int depth)
{
	switch (f->wt) {
	case WT_VARINT:
		return dbuf_printf(c->out, "%" PRIu64, f->v);
	case WT_I64: {
		double d = as_double(f->v);
		double a = fabs(d);
		if (isfinite(d) && (d == 0 || (a >= 1e-12 && a < 1e18)))
			return put_double(c->out, d);
		return dbuf_printf(c->out, "%" PRIu64, f->v);
	}
	case WT_I32: {
		float x = as_float((uint32_t)f->v);
		float a = fabsf(x);
		if (isfinite(x) && (x == 0 || (a >= 1e-9f && a < 1e12f)))
			return put_float(c->out, x);
		return dbuf_printf(c->out, "%" PRIu64, f->v);
	}
	default:
		break;
	}
	if (printable_utf8(f->p, f->len))
		return jsonw_str(c->out, f->p, f->len);
	size_t mark = c->out->len;
	uint64_t used = c->fields;
	int rc = depth + 1 < PB_MAX_DEPTH ? conv_msg(c, f->p, f->len, NULL, depth + 1) : -EBADMSG;
	if (rc != -EBADMSG)
		return rc;
	c->out->len = mark; /* not a message: bytes */
	c->fields = used;
	rc = dbuf_putc(c->out, '"');
	if (!rc)
		rc = jsonw_base64(c->out, f->p, f->len);
	return rc ? rc : dbuf_putc(c->out, '"');
}

/* The name enum @p en gives number @p num; NULL when it declares none. */
static const char *enum_name(const struct pb_enum *en, int32_t num)
{
	size_t lo = 0, hi = en ? en->nv : 0;
	while (lo < hi) { /* the first of the values with that number */
		size_t mid = lo + (hi - lo) / 2;
		if (en->v[mid].number < num)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < (en ? en->nv : 0) && en->v[lo].number == num ? en->v[lo].name : NULL;
}

/*
 * A scalar of declared type @p ft from a varint/fixed value; of an enum
 * (@p en, NULL when unresolved) the value's name as a JSON string, a
 * number it does not declare the integer (protobuf's JSON mapping).
 */
static int put_scalar(struct conv *c, uint8_t ft, const struct pb_enum *en, uint64_t v)
{
	switch (ft) {
	case FT_DOUBLE:
		return isfinite(as_double(v)) ? put_double(c->out, as_double(v))
					      : dbuf_printf(c->out, "\"%g\"", as_double(v));
	case FT_FLOAT:
		return isfinite(as_float((uint32_t)v))
			   ? put_float(c->out, as_float((uint32_t)v))
			   : dbuf_printf(c->out, "\"%g\"", (double)as_float((uint32_t)v));
	case FT_INT64:
	case FT_SFIXED64:
		return dbuf_printf(c->out, "%" PRId64, (int64_t)v);
	case FT_ENUM: {
		const char *name = enum_name(en, (int32_t)(uint32_t)v);
		if (name)
			return jsonw_cstr(c->out, name);
	}
		/* fall through */
	case FT_INT32:
		return dbuf_printf(c->out, "%" PRId32, (int32_t)(uint32_t)v);
	case FT_SFIXED32:
		return dbuf_printf(c->out, "%" PRId32, (int32_t)(uint32_t)v);
	case FT_UINT32:
	case FT_FIXED32:
		return dbuf_printf(c->out, "%" PRIu32, (uint32_t)v);
	case FT_SINT32:
		return dbuf_printf(c->out, "%" PRId32,
				   (int32_t)((uint32_t)v >> 1) ^ -(int32_t)((uint32_t)v & 1));
	case FT_SINT64:
		return dbuf_printf(c->out, "%" PRId64, (int64_t)(v >> 1) ^ -(int64_t)(v & 1));
	case FT_BOOL:
		return dbuf_puts(c->out, v ? "true" : "false");
	default:
		return dbuf_printf(c->out, "%" PRIu64, v);
	}
}

static uint8_t wire_of(uint8_t ft)
{
	switch (ft) {
	case FT_DOUBLE:
	case FT_FIXED64:
	case FT_SFIXED64:
		return WT_I64;
	case FT_FLOAT:
	case FT_FIXED32:
	case FT_SFIXED32:
		return WT_I32;
	case FT_STRING:
	case FT_BYTES:
	case FT_MESSAGE:
		return WT_LEN;
	case FT_GROUP:
		return WT_SGROUP;
	default:
		return WT_VARINT;
	}
}

/* A value of field @p fd (schema) from wire field @p f. */
static int put_typed(struct conv *c, const struct pb_field *fd, const struct wf *f, int depth)
{
	if (f->wt != wire_of(fd->type))
		return put_raw(c, f, depth); /* wire disagrees with the schema */
	switch (fd->type) {
	case FT_STRING:
		return jsonw_str(c->out, f->p, f->len);
	case FT_BYTES: {
		int rc = dbuf_putc(c->out, '"');
		if (!rc)
			rc = jsonw_base64(c->out, f->p, f->len);
		return rc ? rc : dbuf_putc(c->out, '"');
	}
	case FT_MESSAGE: /* put_value() decodes messages with their type */
		return put_raw(c, f, depth);
	default:
		return put_scalar(c, fd->type, fd->en, f->v);
	}
}

/* Packed repeated scalars in a LEN field: each value as an array element. */
static int put_packed(struct conv *c, const struct pb_field *fd, const struct wf *f, bool *first)
{
	const uint8_t *p = f->p, *end = f->p + f->len;
	uint8_t wt = wire_of(fd->type);
	while (p < end) {
		uint64_t v = 0;
		if (wt == WT_VARINT) {
			if (!rd_varint(&p, end, &v))
				return -EBADMSG;
		} else {
			size_t k = wt == WT_I64 ? 8 : 4;
			if ((size_t)(end - p) < k)
				return -EBADMSG;
			for (size_t i = k; i-- > 0;)
				v = v << 8 | p[i];
			p += k;
		}
		if (++c->fields > PB_MAX_FIELDS)
			return -E2BIG;
		int rc = *first ? 0 : dbuf_putc(c->out, ',');
		*first = false;
		if (!rc)
			rc = put_scalar(c, fd->type, fd->en, v);
		if (rc)
			return rc;
	}
	return 0;
}

static const struct pb_field *find_field(const struct pb_type *t, uint32_t num)
{
	if (!t)
		return NULL;
	for (size_t i = 0; i < t->nf; i++)
		if (t->f[i].number == num)
			return &t->f[i];
	return NULL;
}

static const struct pb_type *sub_type(const struct pb_type *t, const struct pb_field *fd)
{
	return fd && fd->type == FT_MESSAGE && fd->msg >= 0 ? &t->s->t[fd->msg] : NULL;
}

/* One occurrence of a field as JSON. */
static int put_value(struct conv *c, const struct pb_type *t, const struct pb_field *fd,
		     const struct wf *f, int depth)
{
	if (!fd)
		return put_raw(c, f, depth);
	if (fd->type == FT_MESSAGE && f->wt == WT_LEN) {
		if (depth + 1 >= PB_MAX_DEPTH)
			return -E2BIG;
		return conv_msg(c, f->p, f->len, sub_type(t, fd), depth + 1);
	}
	return put_typed(c, fd, f, depth);
}

/* One entry of a map field: its key written as a JSON string, its value. */
struct map_ent {
	size_t koff, klen; /* the key's JSON string in the scratch buffer */
	const uint8_t *k;  /* ... there, once it is written */
	uint32_t pos;
	bool has_val;
	struct wf val;
};

static int cmp_ent(const void *a, const void *b)
{
	const struct map_ent *x = a, *y = b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int r = memcmp(x->k, y->k, n);
	if (r || x->klen != y->klen)
		return r ? r : x->klen < y->klen ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int put_default(struct dbuf *o, const struct pb_field *fd)
{
	const char *zero = fd && fd->type == FT_ENUM && fd->en ? enum_name(fd->en, 0) : NULL;
	if (zero)
		return jsonw_cstr(o, zero);
	switch (fd ? fd->type : 0) {
	case FT_MESSAGE:
		return dbuf_puts(o, "{}");
	case FT_STRING:
	case FT_BYTES:
		return dbuf_puts(o, "\"\"");
	case FT_BOOL:
		return dbuf_puts(o, "false");
	default:
		return dbuf_putc(o, '0');
	}
}

/*
 * The @p n occurrences @p e of a map<K, V> field (entry type @p mt) as one
 * JSON object keyed by K, as protobuf's JSON mapping writes maps: the wire
 * order of map entries is undefined (a server may send them in any order
 * each time), so they are not a list compared by position. Entries are
 * written in key order; of a key given twice the last entry counts, as
 * when parsing. -EAGAIN when an entry is not as the schema declares (the
 * caller then writes the entries as a list).
 */
static int put_map(struct conv *c, const struct pb_type *mt, const struct wf *e, size_t n,
		   int depth)
{
	const struct pb_field *kfd = find_field(mt, 1), *vfd = find_field(mt, 2);
	if (!kfd || depth + 1 >= PB_MAX_DEPTH)
		return -EAGAIN;
	struct map_ent *m = mem_alloc(n * sizeof(*m));
	if (!m)
		return -ENOMEM;
	struct dbuf keys;
	dbuf_init(&keys, c->out->max);
	struct dbuf *out = c->out;
	int rc = 0;
	for (size_t i = 0; !rc && i < n; i++) {
		struct wf f, key = {0};
		bool has_key = false;
		m[i] = (struct map_ent){.pos = (uint32_t)i};
		if (e[i].wt != WT_LEN) {
			rc = -EAGAIN;
			break;
		}
		for (const uint8_t *p = e[i].p, *end = p + e[i].len; !rc && p < end;) {
			if (!rd_field(&p, end, &f))
				rc = -EBADMSG;
			else if (++c->fields > PB_MAX_FIELDS)
				rc = -E2BIG;
			else if (f.num == 1)
				key = f, has_key = true;
			else if (f.num == 2)
				m[i].val = f, m[i].has_val = true;
		}
		if (rc)
			break;
		if ((has_key && key.wt != wire_of(kfd->type)) ||
		    (m[i].has_val && vfd && m[i].val.wt != wire_of(vfd->type)) ||
		    kfd->type == FT_MESSAGE || kfd->type == FT_BYTES || kfd->type == FT_FLOAT ||
		    kfd->type == FT_DOUBLE || kfd->type == FT_ENUM) {
			rc = -EAGAIN;
			break;
		}
		m[i].koff = keys.len;
		if (kfd->type == FT_STRING) {
			rc = has_key ? jsonw_str(&keys, key.p, key.len) : dbuf_puts(&keys, "\"\"");
		} else {
			/* integer and bool keys are strings in JSON */
			c->out = &keys;
			rc = dbuf_putc(&keys, '"');
			if (!rc)
				rc = has_key ? put_scalar(c, kfd->type, NULL, key.v)
					     : put_default(&keys, kfd);
			if (!rc)
				rc = dbuf_putc(&keys, '"');
			c->out = out;
		}
		m[i].klen = keys.len - m[i].koff;
	}
	for (size_t i = 0; !rc && i < n; i++)
		m[i].k = keys.data + m[i].koff;
	if (!rc && n > 1)
		qsort(m, n, sizeof(*m), cmp_ent);
	if (!rc)
		rc = dbuf_putc(out, '{');
	bool first = true;
	for (size_t i = 0; !rc && i < n; i++) {
		if (i + 1 < n && m[i + 1].klen == m[i].klen &&
		    !memcmp(m[i + 1].k, m[i].k, m[i].klen))
			continue; /* a later entry of the same key counts */
		if (!first)
			rc = dbuf_putc(out, ',');
		first = false;
		if (!rc)
			rc = dbuf_append(out, m[i].k, m[i].klen);
		if (!rc)
			rc = dbuf_putc(out, ':');
		if (!rc)
			rc = m[i].has_val ? put_value(c, mt, vfd, &m[i].val, depth + 1)
					  : put_default(out, vfd);
	}
	if (!rc)
		rc = dbuf_putc(out, '}');
	dbuf_release(&keys);
	mem_free(m);
	return rc;
}

static int conv_msg(struct conv *c, const uint8_t *d, size_t n, const struct pb_type *t, int depth)
{
	const uint8_t *p = d, *end = d + n;
	size_t count = 0;
	struct wf f;
	while (p < end) {
		if (!rd_field(&p, end, &f))
			return -EBADMSG;
		count++;
	}
	c->fields += count;
	if (c->fields > PB_MAX_FIELDS)
		return -E2BIG;
	struct wf *v = count ? mem_alloc(count * sizeof(*v)) : NULL;
	if (count && !v)
		return -ENOMEM;
	p = d;
	for (size_t i = 0; i < count; i++) {
		rd_field(&p, end, &v[i]);
		v[i].pos = (uint32_t)i;
	}
	if (count > 1)
		qsort(v, count, sizeof(*v), cmp_wf);
	int rc = dbuf_putc(c->out, '{');
	for (size_t i = 0; !rc && i < count;) {
		size_t j = i + 1;
		while (j < count && v[j].num == v[i].num)
			j++;
		const struct pb_field *fd = find_field(t, v[i].num);
		if (i)
			rc = dbuf_putc(c->out, ',');
		if (!rc && fd)
			rc = jsonw_cstr(c->out, fd->name);
		else if (!rc)
			rc = dbuf_printf(c->out, "\"%" PRIu32 "\"", v[i].num);
		if (!rc)
			rc = dbuf_putc(c->out, ':');
		bool array = fd ? fd->repeated : j - i > 1;
		const struct pb_type *mt = fd && fd->repeated ? sub_type(t, fd) : NULL;
		if (!rc && mt && mt->map_entry) {
			size_t mark = c->out->len;
			uint64_t used = c->fields;
			rc = put_map(c, mt, &v[i], j - i, depth);
			if (rc == -EAGAIN) { /* entries not as declared: a list of them */
				c->out->len = mark;
				c->fields = used;
				rc = 0;
			} else {
				array = false;
				if (!rc) {
					i = j;
					continue;
				}
			}
		}
		if (!rc && !array) {
			/* a singular field given twice: the last one counts */
			rc = put_value(c, t, fd, &v[j - 1], depth);
		} else if (!rc) {
			rc = dbuf_putc(c->out, '[');
			bool first = true;
			for (size_t k = i; !rc && k < j; k++) {
				/* each occurrence packed or not as it came: parsers
				 * accept both, mixed (encoding guide, "Packed") */
				if (fd && fd->repeated && v[k].wt == WT_LEN &&
				    wire_of(fd->type) != WT_LEN) {
					rc = put_packed(c, fd, &v[k], &first);
					continue;
				}
				if (!first)
					rc = dbuf_putc(c->out, ',');
				first = false;
				if (!rc)
					rc = put_value(c, t, fd, &v[k], depth);
			}
			if (!rc)
				rc = dbuf_putc(c->out, ']');
		}
		i = j;
	}
	if (!rc)
		rc = dbuf_putc(c->out, '}');
	mem_free(v);
	return rc;
}

int pb_to_json(struct dbuf *out, const uint8_t *msg, size_t n, const struct pb_type *type)
{
	struct conv c = {.out = out};
	return conv_msg(&c, msg ? msg : (const uint8_t *)"", n, type, 0);
}

bool pb_is_grpc_type(const char *ct, size_t n)
{
	static const char g[] = "application/grpc";
	size_t k = sizeof(g) - 1;
	if (n < k || strncasecmp(ct, g, k))
		return false;
	return n == k || ct[k] == '+' || ct[k] == ';' || ct[k] == ' ';
}

int pb_grpc_to_json(struct dbuf *out, const uint8_t *body, size_t n, const struct pb_type *type,
		    const char *enc, size_t enclen, pb_inflate_fn inflate, void *ctx,
		    struct dbuf *tmp)
{
	/* count the messages first: one is shown as itself, others as an array */
	size_t msgs = 0;
	for (size_t off = 0; off < n;) {
		if (n - off < 5)
			return -EBADMSG;
		uint32_t len = (uint32_t)body[off + 1] << 24 | (uint32_t)body[off + 2] << 16 |
			       (uint32_t)body[off + 3] << 8 | body[off + 4];
		if (len > n - off - 5 || body[off] > 1)
			return -EBADMSG;
		off += 5 + (size_t)len;
		if (++msgs > PB_MAX_GRPC_MSGS)
			return -E2BIG;
	}
	int rc = msgs == 1 ? 0 : dbuf_putc(out, '[');
	struct conv c = {.out = out};
	for (size_t off = 0, i = 0; !rc && off < n; i++) {
		uint32_t len = (uint32_t)body[off + 1] << 24 | (uint32_t)body[off + 2] << 16 |
			       (uint32_t)body[off + 3] << 8 | body[off + 4];
		const uint8_t *m = body + off + 5;
		size_t ml = len;
		if (body[off] & 1) { /* compressed with grpc-encoding */
			if (!enc || !enclen || !inflate)
				return -ENOTSUP;
			rc = inflate(ctx, enc, enclen, m, ml, tmp);
			if (rc)
				return rc;
			m = tmp->data ? tmp->data : (const uint8_t *)"";
			ml = tmp->len;
		}
		if (i)
			rc = dbuf_putc(out, ',');
		if (!rc)
			rc = conv_msg(&c, m, ml, type, 0);
		off += 5 + (size_t)len;
	}
	if (!rc && msgs != 1)
		rc = dbuf_putc(out, ']');
	return rc;
}

/* ------------------------------------------------------------------ */
/* Schema: FileDescriptorSet                                           */
/* ------------------------------------------------------------------ */

/* Iterate the fields of message [d, d + n); false when malformed. */
#define EACH_FIELD(d, n, f)                                                                        \
	for (const uint8_t *p_ = (d), *e_ = (d) + (n); p_ < e_ && rd_field(&p_, e_, &(f));)

static bool well_formed(const uint8_t *d, size_t n)
{
	const uint8_t *p = d, *end = d + n;
	struct wf f;
	while (p < end)
		if (!rd_field(&p, end, &f))
			return false;
	return true;
}

static char *dup_join(const char *a, const char *sep, const uint8_t *b, size_t bl)
{
	size_t al = a ? strlen(a) : 0, sl = al ? strlen(sep) : 0;
	char *s = mem_alloc(al + sl + bl + 1);
	if (!s)
		return NULL;
	if (al)
		memcpy(s, a, al);
	if (sl)
		memcpy(s + al, sep, sl);
	if (bl)
		memcpy(s + al + sl, b, bl);
	s[al + sl + bl] = 0;
	return s;
}

static int add_field(struct pb_type *t, const uint8_t *d, size_t n)
{
	if (!well_formed(d, n))
		return -EBADMSG;
	if (t->nf == t->cf) {
		size_t cap = t->cf ? t->cf * 2 : 8;
		struct pb_field *f = mem_realloc(t->f, cap * sizeof(*f));
		if (!f)
			return -ENOMEM;
		t->f = f;
		t->cf = cap;
	}
	struct pb_field *fd = &t->f[t->nf];
	memset(fd, 0, sizeof(*fd));
	fd->msg = -1;
	struct wf f;
	EACH_FIELD(d, n, f)
	{
		if (f.num == 1 && f.wt == WT_LEN && !fd->name)
			fd->name = dup_join(NULL, "", f.p, f.len);
		else if (f.num == 3 && f.wt == WT_VARINT)
			fd->number = (uint32_t)f.v;
		else if (f.num == 4 && f.wt == WT_VARINT)
			fd->repeated = f.v == 3;
		else if (f.num == 5 && f.wt == WT_VARINT)
			fd->type = (uint8_t)f.v;
		else if (f.num == 6 && f.wt == WT_LEN && !fd->type_name)
			fd->type_name = dup_join(NULL, "", f.p, f.len);
	}
	if (!fd->name) {
		mem_free(fd->type_name);
		return -EBADMSG;
	}
	t->nf++;
	return 0;
}

static int cmp_enum_value(const void *a, const void *b)
{
	const struct pb_enum_value *x = a, *y = b;
	if (x->number != y->number)
		return x->number < y->number ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* EnumDescriptorProto @p d[0..n) declared in scope @p prefix (package or message). */
static int add_enum(struct pb_schema *s, const char *prefix, const uint8_t *d, size_t n)
{
	if (!well_formed(d, n))
		return -EBADMSG;
	struct wf f, g;
	const uint8_t *name = NULL;
	size_t nl = 0;
	EACH_FIELD(d, n, f)
	if (f.num == 1 && f.wt == WT_LEN && !name) {
		name = f.p;
		nl = f.len;
	}
	if (!name)
		return -EBADMSG;
	if (s->ne == PB_MAX_TYPES)
		return -E2BIG;
	if (s->ne == s->ce) {
		size_t cap = s->ce ? s->ce * 2 : 8;
		struct pb_enum *e = mem_realloc(s->e, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		s->e = e;
		s->ce = cap;
	}
	struct pb_enum *en = &s->e[s->ne++];
	memset(en, 0, sizeof(*en));
	en->full = dup_join(prefix, ".", name, nl);
	if (!en->full)
		return -ENOMEM;
	EACH_FIELD(d, n, f)
	{
		if (f.num != 2 || f.wt != WT_LEN)
			continue;
		if (!well_formed(f.p, f.len))
			return -EBADMSG;
		const uint8_t *vn = NULL;
		size_t vl = 0;
		int32_t num = 0;
		for (const uint8_t *q = f.p, *qe = f.p + f.len; q < qe && rd_field(&q, qe, &g);) {
			if (g.num == 1 && g.wt == WT_LEN && !vn) {
				vn = g.p;
				vl = g.len;
			} else if (g.num == 2 && g.wt == WT_VARINT) {
				num = (int32_t)(uint32_t)g.v;
			}
		}
		if (!vn)
			return -EBADMSG;
		if (en->nv == en->cv) {
			size_t cap = en->cv ? en->cv * 2 : 8;
			struct pb_enum_value *v = mem_realloc(en->v, cap * sizeof(*v));
			if (!v)
				return -ENOMEM;
			en->v = v;
			en->cv = cap;
		}
		struct pb_enum_value *v = &en->v[en->nv];
		v->number = num;
		v->pos = (uint32_t)en->nv;
		v->name = dup_join(NULL, "", vn, vl);
		if (!v->name)
			return -ENOMEM;
		en->nv++;
	}
	if (en->nv > 1)
		qsort(en->v, en->nv, sizeof(*en->v), cmp_enum_value);
	return 0;
}

/* MessageOptions (DescriptorProto 7): is map_entry (7) set? */
static bool map_entry_option(const uint8_t *d, size_t n)
{
	struct wf f;
	bool on = false;
	EACH_FIELD(d, n, f)
	if (f.num == 7 && f.wt == WT_VARINT)
		on = f.v != 0;
	return on;
}

static int add_msg(struct pb_schema *s, const char *prefix, const uint8_t *d, size_t n, int depth)
{
	if (depth > PB_MAX_DEPTH || !well_formed(d, n))
		return -EBADMSG;
	struct wf f;
	const uint8_t *name = NULL;
	size_t nl = 0;
	EACH_FIELD(d, n, f)
	if (f.num == 1 && f.wt == WT_LEN) {
		name = f.p;
		nl = f.len;
	}
	if (!name)
		return -EBADMSG;
	if (s->nt == PB_MAX_TYPES)
		return -E2BIG;
	if (s->nt == s->ct) {
		size_t cap = s->ct ? s->ct * 2 : 16;
		struct pb_type *t = mem_realloc(s->t, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		s->t = t;
		s->ct = cap;
	}
	size_t ti = s->nt++;
	memset(&s->t[ti], 0, sizeof(s->t[ti]));
	s->t[ti].s = s;
	s->t[ti].full = dup_join(prefix, ".", name, nl);
	if (!s->t[ti].full)
		return -ENOMEM;
	EACH_FIELD(d, n, f)
	{
		int rc = 0;
		if (f.num == 2 && f.wt == WT_LEN)
			rc = add_field(&s->t[ti], f.p, f.len);
		else if (f.num == 3 && f.wt == WT_LEN)
			rc = add_msg(s, s->t[ti].full, f.p, f.len, depth + 1);
		else if (f.num == 4 && f.wt == WT_LEN)
			rc = add_enum(s, s->t[ti].full, f.p, f.len);
		else if (f.num == 7 && f.wt == WT_LEN && well_formed(f.p, f.len))
			s->t[ti].map_entry = map_entry_option(f.p, f.len);
		if (rc)
			return rc;
	}
	return 0;
}

static int add_service(struct pb_schema *s, const char *pkg, const uint8_t *d, size_t n)
{
	if (!well_formed(d, n))
		return -EBADMSG;
	struct wf f, g;
	char *svc = NULL;
	EACH_FIELD(d, n, f)
	if (f.num == 1 && f.wt == WT_LEN && !svc) {
		svc = dup_join(pkg, ".", f.p, f.len);
		if (!svc)
			return -ENOMEM;
	}
	if (!svc)
		return -EBADMSG;
	int rc = 0;
	EACH_FIELD(d, n, f)
	{
		if (f.num != 2 || f.wt != WT_LEN)
			continue;
		if (!well_formed(f.p, f.len)) {
			rc = -EBADMSG;
			break;
		}
		if (s->nm == s->cm) {
			size_t cap = s->cm ? s->cm * 2 : 8;
			struct pb_method *m = mem_realloc(s->m, cap * sizeof(*m));
			if (!m) {
				rc = -ENOMEM;
				break;
			}
			s->m = m;
			s->cm = cap;
		}
		struct pb_method *m = &s->m[s->nm];
		memset(m, 0, sizeof(*m));
		m->tin = m->tout = -1;
		for (const uint8_t *q = f.p, *qe = f.p + f.len; q < qe && rd_field(&q, qe, &g);) {
			if (g.wt != WT_LEN)
				continue;
			if (g.num == 1 && !m->path) {
				char *sv = dup_join("/", "", (const uint8_t *)svc, strlen(svc));
				m->path = sv ? dup_join(sv, "/", g.p, g.len) : NULL;
				mem_free(sv);
			} else if (g.num == 2 && !m->in) {
				m->in = dup_join(NULL, "", g.p, g.len);
			} else if (g.num == 3 && !m->out) {
				m->out = dup_join(NULL, "", g.p, g.len);
			}
		}
		if (!m->path) {
			mem_free(m->in);
			mem_free(m->out);
			continue;
		}
		s->nm++;
	}
	mem_free(svc);
	return rc;
}

static int add_file(struct pb_schema *s, const uint8_t *d, size_t n)
{
	if (!well_formed(d, n))
		return -EBADMSG;
	struct wf f;
	char *pkg = NULL;
	EACH_FIELD(d, n, f)
	if (f.num == 2 && f.wt == WT_LEN && !pkg) {
		pkg = dup_join(NULL, "", f.p, f.len);
		if (!pkg)
			return -ENOMEM;
	}
	int rc = 0;
	EACH_FIELD(d, n, f)
	{
		if (f.wt != WT_LEN)
			continue;
		if (f.num == 4)
			rc = add_msg(s, pkg && *pkg ? pkg : NULL, f.p, f.len, 0);
		else if (f.num == 5)
			rc = add_enum(s, pkg && *pkg ? pkg : NULL, f.p, f.len);
		else if (f.num == 6)
			rc = add_service(s, pkg && *pkg ? pkg : NULL, f.p, f.len);
		if (rc)
			break;
	}
	mem_free(pkg);
	return rc;
}

static const struct pb_enum *find_enum(const struct pb_schema *s, const char *name)
{
	if (!name)
		return NULL;
	if (*name == '.')
		name++;
	for (size_t i = 0; i < s->ne; i++)
		if (!strcmp(s->e[i].full, name))
			return &s->e[i];
	return NULL;
}

static int32_t find_type(const struct pb_schema *s, const char *name)
{
	if (!name)
		return -1;
	if (*name == '.')
		name++;
	for (size_t i = 0; i < s->nt; i++)
		if (!strcmp(s->t[i].full, name))
			return (int32_t)i;
	return -1;
}

struct pb_schema *pb_schema_parse(const uint8_t *d, size_t n, char *err, size_t errlen)
{
	struct pb_schema *s = mem_calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	int rc = well_formed(d, n) ? 0 : -EBADMSG;
	struct wf f;
	size_t files = 0;
	if (!rc)
		EACH_FIELD(d, n, f)
		{
			if (f.num != 1 || f.wt != WT_LEN)
				continue;
			files++;
			rc = add_file(s, f.p, f.len);
			if (rc)
				break;
		}
	if (!rc && !files)
		rc = -EBADMSG;
	if (rc) {
		snprintf(err, errlen, "%s",
			 rc == -ENOMEM	? "out of memory"
			 : rc == -E2BIG ? "too many message or enum types"
					: "not a FileDescriptorSet (make one with protoc -o FILE "
					  "--include_imports X.proto)");
		pb_schema_free(s);
		return NULL;
	}
	for (size_t i = 0; i < s->nt; i++)
		for (size_t j = 0; j < s->t[i].nf; j++)
			if (s->t[i].f[j].type == FT_MESSAGE)
				s->t[i].f[j].msg = find_type(s, s->t[i].f[j].type_name);
			else if (s->t[i].f[j].type == FT_ENUM)
				s->t[i].f[j].en = find_enum(s, s->t[i].f[j].type_name);
	for (size_t i = 0; i < s->nm; i++) {
		s->m[i].tin = find_type(s, s->m[i].in);
		s->m[i].tout = find_type(s, s->m[i].out);
	}
	return s;
}

struct pb_schema *pb_schema_load(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	struct stat sb;
	if (fstat(fd, &sb) < 0 || sb.st_size > PB_MAX_SCHEMA) {
		snprintf(err, errlen, "%s: not a file of at most %u MiB", path,
			 PB_MAX_SCHEMA >> 20);
		close(fd);
		return NULL;
	}
	size_t n = (size_t)sb.st_size;
	uint8_t *d = mem_alloc(n ? n : 1);
	size_t got = 0;
	while (d && got < n) {
		ssize_t r = read(fd, d + got, n - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (!d || got != n) {
		snprintf(err, errlen, "cannot read %s", path);
		mem_free(d);
		return NULL;
	}
	char e2[200];
	struct pb_schema *s = pb_schema_parse(d, n, e2, sizeof(e2));
	mem_free(d);
	if (!s)
		snprintf(err, errlen, "%s: %s", path, e2);
	return s;
}

void pb_schema_free(struct pb_schema *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nt; i++) {
		for (size_t j = 0; j < s->t[i].nf; j++) {
			mem_free(s->t[i].f[j].name);
			mem_free(s->t[i].f[j].type_name);
		}
		mem_free(s->t[i].f);
		mem_free(s->t[i].full);
	}
	for (size_t i = 0; i < s->ne; i++) {
		for (size_t j = 0; j < s->e[i].nv; j++)
			mem_free(s->e[i].v[j].name);
		mem_free(s->e[i].v);
		mem_free(s->e[i].full);
	}
	for (size_t i = 0; i < s->nm; i++) {
		mem_free(s->m[i].path);
		mem_free(s->m[i].in);
		mem_free(s->m[i].out);
	}
	mem_free(s->t);
	mem_free(s->e);
	mem_free(s->m);
	mem_free(s);
}

size_t pb_schema_types(const struct pb_schema *s)
{
	return s ? s->nt : 0;
}

size_t pb_schema_methods(const struct pb_schema *s)
{
	return s ? s->nm : 0;
}

const struct pb_type *pb_schema_method(const struct pb_schema *s, const uint8_t *path, size_t n,
				       bool response)
{
	if (!s || !path)
		return NULL;
	const uint8_t *q = memchr(path, '?', n);
	if (q)
		n = (size_t)(q - path);
	for (size_t i = 0; i < s->nm; i++) {
		if (strlen(s->m[i].path) != n || memcmp(s->m[i].path, path, n))
			continue;
		int32_t t = response ? s->m[i].tout : s->m[i].tin;
		return t >= 0 ? &s->t[t] : NULL;
	}
	return NULL;
}

const struct pb_type *pb_schema_type(const struct pb_schema *s, const char *name)
{
	int32_t t = s ? find_type(s, name) : -1;
	return t >= 0 ? &s->t[t] : NULL;
}
