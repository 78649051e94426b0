// Uses a dependency from pom.xml (joda-time 2.9.2; the pom.xml is Kubeless's example, unchanged).
package io.kubeless;

import org.joda.time.LocalDate;

public class withdeps {
    public String check(Event event, Context context) {
        return new LocalDate(2020, 1, 6).getYear() == 2020 ? "deps ok" : "joda-time misbehaves";
    }
}
