// Benchmark functions for bench/compiled.sh (Kubeless's Java signature; MOD_NAME is the class).
package io.kubeless;

import io.kubeless.kelp.Json;

public class bench {
    public String hello(Event event, Context context) {
        return "hello world";
    }

    // For a JSON POST the data is the body as text (Kubeless's Event.Data): decoded, then
    // re-serialized as JSON, as the Python and Node.js echo functions do.
    public Object echo(Event event, Context context) {
        return Json.parse(event.Data);
    }
}
