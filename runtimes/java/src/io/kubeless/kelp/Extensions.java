package io.kubeless.kelp;

/** Kelp's addition to the event ({@code event.Extensions}): the request and the response. */
public final class Extensions {
    /** The HTTP request the event came from. */
    public final Request Request;
    /** The response's status and headers, which the function may set. */
    public final Response Response;

    Extensions(Request request, Response response) {
        this.Request = request;
        this.Response = response;
    }
}
