package io.kubeless;

/** What the function runs as: Kubeless's {@code io.kubeless.Context}, with public fields. */
public class Context {
    /** The handler's name ({@code FUNC_HANDLER}). */
    public String functionName;
    /** The timeout in seconds ({@code FUNC_TIMEOUT}), as text: {@code "180"}, {@code "7.5"}. */
    public String timeout;
    /** The Kubeless runtime ({@code FUNC_RUNTIME}): {@code java11}. */
    public String runtime;
    /** The memory limit ({@code FUNC_MEMORY_LIMIT}): {@code "128Mi"}, {@code "0"} when unset. */
    public String memoryLimit;

    /** Kubeless's constructor. */
    public Context(String functionName, String timeout, String runtime, String memoryLimit) {
        this.functionName = functionName;
        this.timeout = timeout;
        this.runtime = runtime;
        this.memoryLimit = memoryLimit;
    }
}
