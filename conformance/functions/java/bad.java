// A class that does not compile, for the load-failure case: its build fails with javac's errors.
package io.kubeless;

public class bad {
    public String hello(Event event, Context context) {
        return "missing semicolon"
    }
}
