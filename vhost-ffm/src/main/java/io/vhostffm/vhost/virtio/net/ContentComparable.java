package io.vhostffm.vhost.virtio.net;

/**
 * A state record that keeps itself immutable by handing out copies of its arrays, and whose
 * {@code equals} compares every component, arrays by content, without allocating. A generic
 * comparer of records (migration's state schema, whose "no delta" check at stop-and-copy must
 * not allocate) compares such a record with {@code equals} instead of component by component
 * through the accessors, which would copy each array.
 */
public interface ContentComparable {
}
