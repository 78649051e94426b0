// Never runs: its pom.xml names an artifact that does not exist.
package io.kubeless;

public class faildeps {
    public String check(Event event, Context context) {
        return "unreachable";
    }
}
