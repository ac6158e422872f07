/*
 * list.h - the one intrusive doubly linked list of libsegpool.
 *
 * LIST_DEFINE(prefix, type, NEXT, PREV) defines prefix_push(type **head,
 * type *item) (at the head) and prefix_remove(type **head, type *item) for a
 * NULL-terminated list whose links NEXT(item) and PREV(item) are lvalues of
 * type `type *`: fields of the item itself (regions) or of a side table
 * (segments: pool.links, so that the fast path's cache lines carry no list
 * links).  A removed item's links are cleared.  Callers hold whatever lock
 * guards the list.
 */
#ifndef SEGPOOL_LIST_H
#define SEGPOOL_LIST_H

#define LIST_DEFINE(prefix, type, NEXT, PREV)                                                                   \
    static inline __attribute__((unused)) void prefix##_push(type **head, type *item) {                       \
        PREV(item) = NULL;                                                                                      \
        NEXT(item) = *head;                                                                                     \
        if (*head) PREV(*head) = item;                                                                          \
        *head = item;                                                                                           \
    }                                                                                                           \
    static inline __attribute__((unused)) void prefix##_remove(type **head, type *item) {                     \
        if (PREV(item)) NEXT(PREV(item)) = NEXT(item);                                                          \
        else *head = NEXT(item);                                                                                \
        if (NEXT(item)) PREV(NEXT(item)) = PREV(item);                                                          \
        NEXT(item) = PREV(item) = NULL;                                                                         \
    }

#endif /* SEGPOOL_LIST_H */
