package io.vhostffm.vhost.vhostuser;

/**
 * A vhost-user message that breaks the protocol: a wrong size, too many or too few descriptors,
 * a field out of range, a request out of order. The message says which request and which field;
 * the connection it came on is not to be trusted further.
 */
public final class VhostUserProtocolException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final String request;
    private final String field;

    /**
     * @param request the request, as named on the wire ({@code SET_VRING_ADDR(9)}), or "header"
     * @param field   the offending field ({@code size}, {@code index}, {@code fds}, ...)
     * @param detail  what is wrong with it
     */
    public VhostUserProtocolException(String request, String field, String detail) {
        super(request + ": " + field + ": " + detail);
        this.request = request;
        this.field = field;
    }

    /** The request the message carried, as named in the message. */
    public String request() {
        return request;
    }

    /** The offending field. */
    public String field() {
        return field;
    }
}
