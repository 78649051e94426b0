// Conformance functions for the Java runtime (class `conf`: MOD_NAME is the class name, and a
// lower-case class name is legal Java).
//
// Parallel to ../python/conf.py and ../nodejs/conf.js: same handlers, same behaviour. See
// conformance/README.md. event.Data is the body as text, as Kubeless gave it; the raw bytes are
// event.Extensions.Request.body.
package io.kubeless;

import io.kubeless.kelp.Json;
import io.kubeless.kelp.Request;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

public class conf {
    public String hello(Event event, Context context) {
        return "hello world";
    }

    // The event without `Extensions`, made JSON-able (the data decoded when the request is JSON),
    // plus the request and the context.
    public Map<String, Object> echo(Event event, Context context) {
        Request request = event.Extensions.Request;
        Map<String, Object> out = new LinkedHashMap<>();
        String type = request.header("Content-Type");
        if (type != null && type.split(";")[0].trim().toLowerCase(Locale.ROOT).equals("application/json")) {
            out.put("data", event.Data.isEmpty() ? null : Json.parse(event.Data));
            out.put("data_length", null);
        } else {
            try {
                StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(request.body));
                out.put("data", event.Data);
            } catch (CharacterCodingException e) {
                out.put("data", Base64.getEncoder().encodeToString(request.body));
                out.put("data_encoding", "base64");
            }
            out.put("data_length", request.body.length);
        }
        out.put("event-id", event.EventID);
        out.put("event-type", event.EventType);
        out.put("event-time", event.EventTime);
        out.put("event-namespace", event.EventNamespace);
        Map<String, Object> seen = new LinkedHashMap<>();
        seen.put("method", request.method);
        seen.put("path", request.path);
        seen.put("url", request.url);
        seen.put("query", request.query);
        seen.put("headers", request.headers);
        out.put("request", seen);
        out.put("x_custom_header", request.header("X-Custom-Header"));
        Map<String, Object> ctx = new LinkedHashMap<>();
        ctx.put("function-name", context.functionName);
        ctx.put("timeout", Double.parseDouble(context.timeout));
        ctx.put("runtime", context.runtime);
        ctx.put("memory-limit", context.memoryLimit);
        out.put("context", ctx);
        return out;
    }

    public Object returns(Event event, Context context) {
        switch (event.Extensions.Request.param("t")) {
            case "str": return "a string";
            case "bytes": return new byte[] {0x00, 0x01, 'b', 'y', 't', 'e', 's', (byte) 0xff};
            case "dict": {
                Map<String, Object> dict = new LinkedHashMap<>();
                dict.put("a", 1);
                dict.put("b", Arrays.asList(true, null, "x"));
                return dict;
            }
            case "list": return Arrays.asList(1, "two", null);
            case "none": return null;
            case "number": return 42;
            case "bool": return true;
            case "empty": return "";
            case "false": return false;
            case "zero": return 0;
            case "float": return 1.5;
            case "unicode": return "h\u00e9llo \u2713";
            default: throw new IllegalArgumentException("unknown t");
        }
    }

    public String status(Event event, Context context) {
        event.Extensions.Response.status(201).header("x-kelp", "yes");
        return "created";
    }

    // Sets a Content-Length that disagrees with the body: the runtime must frame the body itself.
    public String framing(Event event, Context context) {
        event.Extensions.Response.header("content-length", "5");
        return "hello world";
    }

    public String boom(Event event, Context context) {
        throw new RuntimeException("kaboom");
    }

    private static double querySeconds(Event event) {
        String s = event.Extensions.Request.param("s");
        return s == null ? 0 : Double.parseDouble(s);
    }

    public String slow(Event event, Context context) throws InterruptedException {
        Thread.sleep((long) (querySeconds(event) * 1000));
        return "slept";
    }

    public String spin(Event event, Context context) {
        while (true) {
            // hang synchronously
        }
    }

    public String die(Event event, Context context) {
        System.exit(3);
        return "unreachable";
    }

    public String env(Event event, Context context) {
        return System.getenv(event.Extensions.Request.param("name"));
    }

    public CompletableFuture<String> asyncfn(Event event, Context context) {
        return CompletableFuture.supplyAsync(() -> "async ok",
                CompletableFuture.delayedExecutor(10, TimeUnit.MILLISECONDS));
    }
}
