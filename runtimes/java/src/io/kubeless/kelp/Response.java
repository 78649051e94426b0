package io.kubeless.kelp;

import java.util.ArrayList;
import java.util.List;

/**
 * The response's status and headers ({@code event.Extensions.Response}); the body is what the
 * function returns.
 */
public final class Response {
    private int status = 200;
    private final List<String[]> headers = new ArrayList<>();

    Response() {}

    /** Sets the status code (100 to 999); returns this response. */
    public Response status(int code) {
        if (code < 100 || code > 999) {
            throw new IllegalArgumentException("invalid response status " + code + ": expected 100 to 999");
        }
        status = code;
        return this;
    }

    /** The status code: 200 unless set. */
    public int status() {
        return status;
    }

    /** Sets the header {@code name} to {@code value}, replacing any of that name; returns this response. */
    public Response header(String name, String value) {
        check(name, value);
        headers.removeIf(h -> h[0].equalsIgnoreCase(name));
        headers.add(new String[] {name, value});
        return this;
    }

    /** Adds a header {@code name: value}, keeping any of that name; returns this response. */
    public Response addHeader(String name, String value) {
        check(name, value);
        headers.add(new String[] {name, value});
        return this;
    }

    /** The value of the header {@code name} (in any case) set last, or null. */
    public String header(String name) {
        for (int i = headers.size() - 1; i >= 0; i--) {
            if (headers.get(i)[0].equalsIgnoreCase(name)) {
                return headers.get(i)[1];
            }
        }
        return null;
    }

    List<String[]> headers() {
        return headers;
    }

    private static void check(String name, String value) {
        if (name == null || name.isEmpty() || name.chars().anyMatch(c -> c <= ' ' || c == ':' || c >= 0x7f)) {
            throw new IllegalArgumentException("invalid response header name \"" + name + "\"");
        }
        if (value == null || value.chars().anyMatch(c -> c == '\r' || c == '\n' || c == 0)) {
            throw new IllegalArgumentException("invalid value for response header \"" + name + "\": " + value);
        }
    }
}
