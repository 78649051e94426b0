package io.kubeless;

import io.kubeless.kelp.Extensions;

/**
 * The event a function receives: Kubeless's {@code io.kubeless.Event}, with public fields (Kelp
 * loads the function's classes in a class loader of their own, so package access would not
 * reach them) and Kelp's {@link #Extensions}.
 */
public class Event {
    /** The request body as text (UTF-8; bytes that are not UTF-8 become U+FFFD); empty when there is none. */
    public String Data;
    /** The {@code event-id} header, or null. */
    public String EventID;
    /** The {@code event-type} header, or null. */
    public String EventType;
    /** The {@code event-time} header, or null. */
    public String EventTime;
    /** The {@code event-namespace} header, or null. */
    public String EventNamespace;
    /** Kelp's addition: the HTTP request, and the response's status and headers. */
    public Extensions Extensions;

    /** Kubeless's constructor; {@link #Extensions} stays null. */
    public Event(String data, String eventId, String eventType, String eventTime, String eventNamespace) {
        this.Data = data;
        this.EventID = eventId;
        this.EventType = eventType;
        this.EventTime = eventTime;
        this.EventNamespace = eventNamespace;
    }
}
