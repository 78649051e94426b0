package io.kubeless.kelp;

import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** The HTTP request of an event ({@code event.Extensions.Request}). */
public final class Request {
    /** The method: {@code GET}, {@code POST}. */
    public final String method;
    /** The path, without the query: {@code /a/b}. */
    public final String path;
    /** The path and the query as sent: {@code /a/b?x=1}. */
    public final String url;
    /**
     * The query's parameters, decoded: a value is a {@code String}, or a {@code List<String>} when
     * the name repeats ({@code ?x=1&x=2}); a name without {@code =} has the value {@code ""}.
     */
    public final Map<String, Object> query;
    /** The headers, by lower-case name (repeated headers joined with {@code ", "}). */
    public final Map<String, String> headers;
    /** The body's bytes, as received. */
    public final byte[] body;

    Request(String method, String path, String url, Map<String, Object> query, Map<String, String> headers, byte[] body) {
        this.method = method;
        this.path = path;
        this.url = url;
        this.query = Collections.unmodifiableMap(query);
        this.headers = Collections.unmodifiableMap(headers);
        this.body = body;
    }

    /** The header {@code name} (in any case), or null. */
    public String header(String name) {
        return headers.get(name.toLowerCase(Locale.ROOT));
    }

    /** The first value of the query parameter {@code name}, or null. */
    public String param(String name) {
        Object value = query.get(name);
        if (value instanceof List) {
            List<?> values = (List<?>) value;
            return values.isEmpty() ? null : (String) values.get(0);
        }
        return (String) value;
    }
}
