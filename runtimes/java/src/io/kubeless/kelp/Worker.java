package io.kubeless.kelp;

import io.kubeless.Context;
import io.kubeless.Event;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.File;
import java.io.IOException;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.MalformedURLException;
import java.net.StandardProtocolFamily;
import java.net.URL;
import java.net.URLClassLoader;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;

/**
 * Kelp's Java worker: started by kelp-runtime as {@code java ... io.kubeless.kelp.Worker <build
 * dir>} with {@code KELP_WORKER_SOCKET} set; it connects to that Unix socket and speaks the framed
 * protocol of runtimes/PROTOCOL.md: hello, load, loaded or load_error, then invoke and result, one
 * request at a time, until end-of-file. The function's class ({@code io.kubeless.<MOD_NAME>},
 * compiled into {@code <build dir>/classes}, its Maven dependencies in {@code <build dir>/lib}) is
 * loaded by a class loader of its own. Nothing of the protocol is written to stdout or stderr:
 * they belong to the function. {@code --train} is the build's training run (see {@link #train}).
 */
public final class Worker {
    private static final String CT_TEXT = "text/plain; charset=utf-8";
    private static final String CT_BINARY = "application/octet-stream";
    private static final String CT_JSON = "application/json";
    private static final byte[] EMPTY = new byte[0];

    private final Object target;
    private final Method method;
    private final Map<String, Object> context;

    private Worker(Object target, Method method, Map<String, Object> context) {
        this.target = target;
        this.method = method;
        this.context = context;
    }

    /** Runs the worker; see the class comment. */
    public static void main(String[] args) {
        if (args.length == 4 && "--train".equals(args[0])) {
            exit(train(new File(args[1]), args[2], args[3]));
        }
        String socket = System.getenv("KELP_WORKER_SOCKET");
        if (socket == null || socket.isEmpty() || args.length != 1) {
            System.err.println("kelp_worker: usage: KELP_WORKER_SOCKET=<socket> java io.kubeless.kelp.Worker <build dir>");
            exit(2);
        }
        SocketChannel channel = null;
        try {
            channel = SocketChannel.open(UnixDomainSocketAddress.of(socket));
        } catch (IOException | RuntimeException e) {
            System.err.println("kelp_worker: cannot connect to " + socket + ": " + e);
            exit(2);
        }
        exit(serve(channel, new File(args[0]), true));
    }

    /**
     * Speaks the protocol on {@code channel} until end-of-file; returns the exit status. With
     * {@code run} false (a training run), the function's class is loaded but not initialized and
     * no handler is called.
     */
    private static int serve(SocketChannel channel, File build, boolean run) {
        DataInputStream in = new DataInputStream(new BufferedInputStream(Channels.newInputStream(channel), 65536));
        DataOutputStream out = new DataOutputStream(new BufferedOutputStream(Channels.newOutputStream(channel), 65536));
        try {
            Map<String, Object> hello = new LinkedHashMap<>();
            hello.put("type", "hello");
            hello.put("pid", ProcessHandle.current().pid());
            hello.put("version", System.getProperty("java.version"));
            send(out, hello, EMPTY);
            Frame load = Frame.read(in);
            if (load == null) {
                return 0;
            }
            if (!"load".equals(load.header.get("type"))) {
                System.err.println("kelp_worker: expected a \"load\" message, got " + load.header.get("type"));
                return 1;
            }
            Worker worker;
            try {
                worker = load(build, load.header, run);
            } catch (LoadError e) {
                System.err.println("kelp_worker: " + e.getMessage());
                send(out, Map.of("type", "load_error", "message", e.getMessage()), EMPTY);
                return 1;
            }
            send(out, Map.of("type", "loaded"), EMPTY);
            for (Frame frame = Frame.read(in); frame != null; frame = Frame.read(in)) {
                if (!"invoke".equals(frame.header.get("type"))) {
                    System.err.println("kelp_worker: ignoring an unexpected " + frame.header.get("type") + " message");
                    continue;
                }
                Result result = worker.invoke(frame, run);
                System.out.flush();
                System.err.flush();
                send(out, result.header(), result.body);
            }
        } catch (IOException e) {
            // The front closed the socket or went away: nothing is left to answer.
        }
        return 0;
    }

    /**
     * The build's training run, {@code --train <build dir> <class> <handler>}, which the build
     * runs once under {@code -XX:ArchiveClassesAtExit} so that its workers start from the
     * class-data archive it leaves: the start of a worker as the front makes it, over a Unix
     * socket of its own ({@code kelp/train.sock}, relative to the working directory, the build
     * directory): hello, load, one invoke of {@code GET /}, end-of-file. No code of the function
     * runs: its class is loaded without being initialized (no static initializer, no
     * constructor), and the invoke calls no handler (it answers an empty 200).
     */
    private static int train(File build, String module, String handler) {
        UnixDomainSocketAddress address = UnixDomainSocketAddress.of("kelp/train.sock");
        try {
            Files.deleteIfExists(address.getPath());
            try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
                server.bind(address);
                // As main does: the JDK's classes of a Unix socket's client go into the archive.
                SocketChannel channel = SocketChannel.open(address);
                try (SocketChannel front = server.accept()) {
                    DataOutputStream out = new DataOutputStream(new BufferedOutputStream(Channels.newOutputStream(front)));
                    Map<String, Object> load = new LinkedHashMap<>();
                    load.put("type", "load");
                    load.put("module", module);
                    load.put("handler", handler);
                    load.put("context", Map.of("function-name", module, "timeout", 180.0, "runtime", "java", "memory-limit", ""));
                    send(out, load, EMPTY);
                    Map<String, Object> request = new LinkedHashMap<>();
                    request.put("method", "GET");
                    request.put("path", "/");
                    request.put("url", "/?a=1");
                    request.put("query", Map.of("a", "1"));
                    request.put("headers", Map.of("host", "localhost"));
                    Map<String, Object> invoke = new LinkedHashMap<>();
                    invoke.put("type", "invoke");
                    invoke.put("event", Map.of("event-id", "train", "event-type", "application/json"));
                    invoke.put("request", request);
                    invoke.put("data", "json");
                    send(out, invoke, "{}".getBytes(StandardCharsets.UTF_8));
                    front.shutdownOutput();
                    return serve(channel, build, false);
                }
            } finally {
                Files.deleteIfExists(address.getPath());
            }
        } catch (IOException e) {
            System.err.println("kelp_worker: training run: " + e);
            return 1;
        }
    }

    private static void exit(int status) {
        System.out.flush();
        System.err.flush();
        System.exit(status);
    }

    /** Why the function could not be loaded. */
    private static final class LoadError extends Exception {
        LoadError(String message) {
            super(message);
        }
    }

    /**
     * Loads the class and finds the handler the {@code load} message names; with {@code run}, also
     * initializes the class and makes the instance whose method is called.
     */
    private static Worker load(File build, Map<String, Object> msg, boolean run) throws LoadError {
        String module = string(msg.get("module"));
        String handler = string(msg.get("handler"));
        String className = "io.kubeless." + module;
        String where = "cannot load handler \"" + handler + "\" from class " + className + " (" + module + ".java): ";
        if (module == null || module.isEmpty() || handler == null || handler.isEmpty()) {
            throw new LoadError(where + "no class or handler name given");
        }
        if (msg.get("env") instanceof Map && !((Map<?, ?>) msg.get("env")).isEmpty()) {
            throw new LoadError(where + "a Java worker cannot change its own environment: give the variables to kelp-runtime");
        }
        ClassLoader loader = functionLoader(build);
        Thread.currentThread().setContextClassLoader(loader);
        Class<?> type;
        try {
            type = Class.forName(className, run, loader);
        } catch (ClassNotFoundException e) {
            throw new LoadError(where + "the build has no class " + className
                    + " (" + module + ".java must declare \"package io.kubeless;\" and \"public class " + module + "\")");
        } catch (ExceptionInInitializerError e) {
            e.getCause().printStackTrace();
            throw new LoadError(where + "its static initializer threw " + describe(e.getCause()));
        } catch (LinkageError e) {
            throw new LoadError(where + e);
        }
        Method method;
        try {
            method = type.getMethod(handler, Event.class, Context.class);
        } catch (NoSuchMethodException e) {
            method = Arrays.stream(type.getDeclaredMethods())
                    .filter(m -> m.getName().equals(handler) && Arrays.equals(m.getParameterTypes(), new Class<?>[] {Event.class, Context.class}))
                    .findFirst()
                    .orElseThrow(() -> new LoadError(where + "the class has no method " + handler
                            + "(io.kubeless.Event, io.kubeless.Context)"));
        }
        Object target = null;
        try {
            method.setAccessible(true);
            if (run && !Modifier.isStatic(method.getModifiers())) {
                Constructor<?> constructor = type.getDeclaredConstructor();
                constructor.setAccessible(true);
                target = constructor.newInstance();
            }
        } catch (NoSuchMethodException e) {
            throw new LoadError(where + "the class has no constructor without arguments");
        } catch (InvocationTargetException e) {
            e.getCause().printStackTrace();
            throw new LoadError(where + "its constructor threw " + describe(e.getCause()));
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new LoadError(where + e);
        }
        Map<String, Object> context = msg.get("context") instanceof Map ? cast(msg.get("context")) : Map.of();
        return new Worker(target, method, context);
    }

    /** A class loader over the build's classes and the jars of its dependencies. */
    private static ClassLoader functionLoader(File build) throws LoadError {
        List<URL> urls = new ArrayList<>();
        try {
            urls.add(new File(build, "classes").toURI().toURL());
            // No lambda here: a worker's start would pay for bootstrapping it.
            File[] files = new File(build, "lib").listFiles();
            if (files != null) {
                Arrays.sort(files);
                for (File file : files) {
                    if (file.getName().endsWith(".jar")) {
                        urls.add(file.toURI().toURL());
                    }
                }
            }
        } catch (MalformedURLException e) {
            throw new LoadError("the build directory " + build + " is not a valid URL: " + e.getMessage());
        }
        return new URLClassLoader("function", urls.toArray(new URL[0]), Worker.class.getClassLoader());
    }

    /** One invocation; without {@code run} (a training run), everything of it but the call. */
    private Result invoke(Frame frame, boolean run) {
        Map<String, Object> event = frame.header.get("event") instanceof Map ? cast(frame.header.get("event")) : Map.of();
        Map<String, Object> request = frame.header.get("request") instanceof Map ? cast(frame.header.get("request")) : Map.of();
        String data;
        if ("json".equals(frame.header.get("data"))) {
            try {
                data = StandardCharsets.UTF_8.newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT)
                        .decode(ByteBuffer.wrap(frame.body))
                        .toString();
                if (!data.isEmpty()) {
                    Json.parse(data);
                }
            } catch (CharacterCodingException | IllegalArgumentException e) {
                String reason = e instanceof CharacterCodingException ? "it is not UTF-8" : e.getMessage();
                return Result.text(400, "invalid JSON body: " + reason, false);
            }
        } else {
            data = new String(frame.body, StandardCharsets.UTF_8);
        }
        Event ev = new Event(data, string(event.get("event-id")), string(event.get("event-type")),
                string(event.get("event-time")), string(event.get("event-namespace")));
        Response response = new Response();
        ev.Extensions = new Extensions(request(request, frame.body), response);
        Context ctx = new Context(string(context.get("function-name")), seconds(context.get("timeout")),
                string(context.get("runtime")), string(context.get("memory-limit")));
        Object value;
        try {
            value = run ? method.invoke(target, ev, ctx) : null;
            if (value instanceof Future) {
                value = ((Future<?>) value).get();
            }
        } catch (InvocationTargetException | ExecutionException e) {
            return failure(e.getCause());
        } catch (InterruptedException | IllegalAccessException | RuntimeException e) {
            return failure(e);
        }
        try {
            return Result.of(response, value);
        } catch (IllegalArgumentException e) {
            System.err.println("kelp_worker: cannot encode the function's result: " + e.getMessage());
            return Result.text(500, "cannot encode the function's result: " + e.getMessage(), true);
        }
    }

    /** A 500 for what the function threw, whose stack trace goes to stderr. */
    private static Result failure(Throwable thrown) {
        StackTraceElement[] stack = thrown.getStackTrace();
        for (int i = 0; i < stack.length; i++) {
            String cls = stack[i].getClassName();
            if (cls.startsWith("jdk.internal.reflect.") || cls.equals("java.lang.reflect.Method")) {
                thrown.setStackTrace(Arrays.copyOf(stack, i));
                break;
            }
        }
        thrown.printStackTrace();
        String message = thrown.getMessage();
        return Result.text(500, message == null || message.isEmpty() ? thrown.getClass().getName() : message, true);
    }

    private static String describe(Throwable thrown) {
        return thrown.getMessage() == null ? thrown.getClass().getName() : thrown.getClass().getName() + ": " + thrown.getMessage();
    }

    /** The request of an {@code invoke}, for {@code event.Extensions.Request}. */
    private static Request request(Map<String, Object> r, byte[] body) {
        Map<String, Object> query = new LinkedHashMap<>();
        if (r.get("query") instanceof Map) {
            for (Map.Entry<String, Object> e : Worker.<Map<String, Object>>cast(r.get("query")).entrySet()) {
                Object v = e.getValue();
                if (v instanceof List) {
                    List<String> values = new ArrayList<>();
                    for (Object item : (List<?>) v) {
                        values.add(String.valueOf(item));
                    }
                    query.put(e.getKey(), Collections.unmodifiableList(values));
                } else {
                    query.put(e.getKey(), string(v));
                }
            }
        }
        Map<String, String> headers = new LinkedHashMap<>();
        if (r.get("headers") instanceof Map) {
            for (Map.Entry<String, Object> e : Worker.<Map<String, Object>>cast(r.get("headers")).entrySet()) {
                headers.put(e.getKey(), string(e.getValue()));
            }
        }
        return new Request(string(r.get("method")), string(r.get("path")), string(r.get("url")), query, headers, body);
    }

    /** A timeout in seconds as Kubeless's context held it: {@code "180"}, {@code "7.5"}. */
    private static String seconds(Object timeout) {
        if (timeout instanceof Double) {
            double d = (Double) timeout;
            return d == Math.rint(d) && Math.abs(d) < 1e15 ? Long.toString((long) d) : Double.toString(d);
        }
        return timeout == null ? null : timeout.toString();
    }

    private static String string(Object value) {
        return value == null ? null : value.toString();
    }

    @SuppressWarnings("unchecked")
    private static <T> T cast(Object value) {
        return (T) value;
    }

    private static void send(DataOutputStream out, Map<String, Object> header, byte[] body) throws IOException {
        byte[] h = Json.stringify(header).getBytes(StandardCharsets.UTF_8);
        out.writeInt(h.length);
        out.write(h);
        out.writeInt(body.length);
        out.write(body);
        out.flush();
    }

    /** One frame read from the front. */
    private static final class Frame {
        final Map<String, Object> header;
        final byte[] body;

        private Frame(Map<String, Object> header, byte[] body) {
            this.header = header;
            this.body = body;
        }

        /** The next frame, or null at end-of-file. */
        static Frame read(DataInputStream in) throws IOException {
            int headerLength;
            try {
                headerLength = in.readInt();
            } catch (EOFException e) {
                return null;
            }
            byte[] header = in.readNBytes(headerLength);
            if (header.length != headerLength) {
                return null;
            }
            int bodyLength;
            try {
                bodyLength = in.readInt();
            } catch (EOFException e) {
                return null;
            }
            byte[] body = in.readNBytes(bodyLength);
            if (body.length != bodyLength) {
                return null;
            }
            Object parsed = Json.parse(new String(header, StandardCharsets.UTF_8));
            return new Frame(parsed instanceof Map ? cast(parsed) : Map.of(), body);
        }
    }

    /** A {@code result} message. */
    private static final class Result {
        final int status;
        final List<String[]> headers;
        final boolean failed;
        final byte[] body;

        private Result(int status, List<String[]> headers, boolean failed, byte[] body) {
            this.status = status;
            this.headers = headers;
            this.failed = failed;
            this.body = body;
        }

        static Result text(int status, String text, boolean failed) {
            List<String[]> headers = new ArrayList<>();
            headers.add(new String[] {"content-type", CT_TEXT});
            return new Result(status, headers, failed, text.getBytes(StandardCharsets.UTF_8));
        }

        /** What the function returned, with the status and headers it set. */
        static Result of(Response response, Object value) {
            byte[] body;
            String type;
            if (value == null) {
                body = EMPTY;
                type = null;
            } else if (value instanceof CharSequence) {
                body = value.toString().getBytes(StandardCharsets.UTF_8);
                type = CT_TEXT;
            } else if (value instanceof byte[]) {
                body = (byte[]) value;
                type = CT_BINARY;
            } else {
                body = Json.stringify(value).getBytes(StandardCharsets.UTF_8);
                type = CT_JSON;
            }
            List<String[]> headers = new ArrayList<>(response.headers());
            if (type != null && response.header("content-type") == null) {
                headers.add(new String[] {"content-type", type});
            }
            return new Result(response.status(), headers, false, body);
        }

        Map<String, Object> header() {
            Map<String, Object> h = new LinkedHashMap<>();
            h.put("type", "result");
            h.put("status", status);
            h.put("headers", headers);
            h.put("failed", failed);
            return h;
        }
    }
}
