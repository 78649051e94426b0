// Kelp's Go worker: the main package of a Go function's build.
//
// kelp-runtime builds it with the function (the generated handler.go names the handler, the
// module "function" is the user's code) into one static binary, and starts it with
// KELP_WORKER_SOCKET set; it connects to that Unix socket and speaks the framed protocol of
// runtimes/PROTOCOL.md: hello -> load -> loaded | load_error -> (invoke -> result)* -> exit 0 at
// end-of-file. Nothing of the protocol is written to stdout or stderr: those are the function's.
//
// The function is called as Kubeless's Go runtime called it: Event.Data is the raw body,
// Extensions.Request a real *http.Request, Extensions.Response a ResponseWriter whose headers,
// status and writes make the response (the returned string is appended to what was written), and
// a returned error answers 500 with the body "Error: <err>".
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/kubeless/kubeless/pkg/functions"
)

const contentTypeText = "text/plain; charset=utf-8"

// conn is the worker's side of the socket.
type conn struct {
	r *bufio.Reader
	w *bufio.Writer
}

// read reads one frame: its header (JSON) and body. io.EOF at a clean end-of-file.
func (c *conn) read() ([]byte, []byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(c.r, n[:]); err != nil {
		return nil, nil, err
	}
	header := make([]byte, binary.BigEndian.Uint32(n[:]))
	if _, err := io.ReadFull(c.r, header); err != nil {
		return nil, nil, err
	}
	if _, err := io.ReadFull(c.r, n[:]); err != nil {
		return nil, nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(n[:]))
	if _, err := io.ReadFull(c.r, body); err != nil {
		return nil, nil, err
	}
	return header, body, nil
}

// write sends one frame whose header is v as JSON.
func (c *conn) write(v interface{}, body []byte) error {
	frame, err := encodeFrame(v, body)
	if err != nil {
		return err
	}
	return c.send(frame)
}

// send sends one encoded frame.
func (c *conn) send(frame []byte) error {
	c.w.Write(frame)
	return c.w.Flush()
}

// encodeFrame makes one frame whose header is v as JSON.
func encodeFrame(v interface{}, body []byte) ([]byte, error) {
	header, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	frame := make([]byte, 0, 8+len(header)+len(body))
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(header)))
	frame = append(frame, header...)
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(body)))
	return append(frame, body...), nil
}

// resultFrame is the frame of a result, encoded by hand: the same JSON as encoding/json gives
// (but for <, > and &, which it escapes and JSON need not), without its reflection and its
// validation of the output, which took more than the rest of a small function's call.
func resultFrame(res result, body []byte) []byte {
	frame := make([]byte, 4, 96+len(body))
	frame = append(frame, `{"type":"result","status":`...)
	frame = strconv.AppendInt(frame, int64(res.Status), 10)
	frame = append(frame, `,"headers":[`...)
	for i, h := range res.Headers {
		if i > 0 {
			frame = append(frame, ',')
		}
		frame = append(frame, '[')
		frame = appendJSONString(frame, h[0])
		frame = append(frame, ',')
		frame = appendJSONString(frame, h[1])
		frame = append(frame, ']')
	}
	frame = append(frame, `],"failed":`...)
	frame = strconv.AppendBool(frame, res.Failed)
	frame = append(frame, '}')
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(body)))
	return append(frame, body...)
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD, as encoding/json
// makes it.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
			i++
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			i++
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
		}
	}
	return append(b, '"')
}

type hello struct {
	Type    string `json:"type"`
	Pid     int    `json:"pid"`
	Version string `json:"version"`
}

type load struct {
	Type    string            `json:"type"`
	Module  string            `json:"module"`
	Handler string            `json:"handler"`
	Env     map[string]string `json:"env"`
	Context struct {
		FunctionName string      `json:"function-name"`
		Timeout      json.Number `json:"timeout"`
		Runtime      string      `json:"runtime"`
		MemoryLimit  string      `json:"memory-limit"`
	} `json:"context"`
}

type loadError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

type invoke struct {
	Type  string `json:"type"`
	Event struct {
		ID        *string `json:"event-id"`
		Type      *string `json:"event-type"`
		Time      *string `json:"event-time"`
		Namespace *string `json:"event-namespace"`
	} `json:"event"`
	Request struct {
		Method  string            `json:"method"`
		Path    string            `json:"path"`
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers"`
	} `json:"request"`
	Data string `json:"data"`
}

// result is what a call answers, written as a frame by resultFrame.
type result struct {
	Status  int
	Headers [][2]string
	Failed  bool
}

// response is the function's http.ResponseWriter: what it sets and writes makes the result.
type response struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *response) Header() http.Header { return r.header }

// WriteHeader sets the status once, as net/http does (later calls are ignored); an invalid
// code panics, as net/http's does.
func (r *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if r.status == 0 {
		r.status = code
	}
}

func (r *response) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

// headers are the response's headers as pairs, sorted by name, with content-type text/plain
// unless the function set one. A header set to nil (net/http's way to suppress an automatic
// header) is not sent; a content-type set to nil suppresses the default one.
func (r *response) headers() [][2]string {
	names := make([]string, 0, len(r.header))
	hasType := false
	for name := range r.header {
		if strings.EqualFold(name, "Content-Type") {
			hasType = true
		}
		names = append(names, name)
	}
	sort.Strings(names)
	pairs := make([][2]string, 0, len(names)+1)
	newlines := strings.NewReplacer("\r", " ", "\n", " ", "\x00", " ")
	for _, name := range names {
		if !isToken(name) {
			fmt.Fprintf(os.Stderr, "kelp: dropping the response header %q: not a valid header name\n", name)
			continue
		}
		for _, value := range r.header[name] {
			pairs = append(pairs, [2]string{name, newlines.Replace(value)})
		}
	}
	if !hasType {
		pairs = append(pairs, [2]string{"Content-Type", contentTypeText})
	}
	return pairs
}

// isToken says whether name is an HTTP token (RFC 9110), what a header name must be.
func isToken(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// worker is the loaded function.
type worker struct {
	context functions.Context
	timeout time.Duration
}

// request is the *http.Request of an invocation, as net/http's server would make it: the
// Host header moved to Host, the body a reader of the request body.
func request(ctx context.Context, m *invoke, body []byte) *http.Request {
	u, err := url.ParseRequestURI(m.Request.URL)
	if err != nil {
		u = &url.URL{Path: m.Request.Path}
		if i := strings.IndexByte(m.Request.URL, '?'); i >= 0 {
			u.RawQuery = m.Request.URL[i+1:]
		}
	}
	header := make(http.Header, len(m.Request.Headers))
	for name, value := range m.Request.Headers {
		header[http.CanonicalHeaderKey(name)] = []string{value}
	}
	host := header.Get("Host")
	header.Del("Host")
	r := &http.Request{
		Method:        m.Request.Method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        header,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Host:          host,
		RequestURI:    m.Request.URL,
	}
	return r.WithContext(ctx)
}

func text(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// call runs the function for one invocation and makes its result.
func (w *worker) call(m *invoke, body []byte) (res result, out []byte) {
	res = result{}
	if m.Data == "json" && len(body) > 0 && !json.Valid(body) {
		var v interface{}
		err := json.Unmarshal(body, &v)
		res.Status, res.Headers = http.StatusBadRequest, [][2]string{{"Content-Type", contentTypeText}}
		return res, []byte(fmt.Sprintf("invalid JSON body: %v", err))
	}
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if w.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, w.timeout)
	}
	defer cancel()
	rw := &response{header: make(http.Header)}
	event := functions.Event{
		Data:           string(body),
		EventID:        text(m.Event.ID),
		EventType:      text(m.Event.Type),
		EventTime:      text(m.Event.Time),
		EventNamespace: text(m.Event.Namespace),
		Extensions:     functions.Extension{Request: request(ctx, m, body), Response: rw, Context: ctx},
	}
	fail := func(message string) {
		res.Status, res.Failed = http.StatusInternalServerError, true
		rw.body.WriteString(message)
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				fmt.Fprintf(os.Stderr, "panic: %v\n\n%s", p, debug.Stack())
				fail(fmt.Sprintf("Error: panic: %v", p))
			}
		}()
		returned, err := handler(event, w.context)
		if err != nil {
			fail(fmt.Sprintf("Error: %v", err))
			return
		}
		rw.Write([]byte(returned))
	}()
	if res.Status == 0 {
		res.Status = rw.status
	}
	res.Headers = rw.headers()
	return res, rw.body.Bytes()
}

// loaded checks the load message against what this worker was built for and applies it.
func loaded(m *load) (*worker, error) {
	if m.Module != builtModule || m.Handler != builtHandler {
		return nil, fmt.Errorf("cannot load handler %q from module %q: this worker was built for %s.%s",
			m.Handler, m.Module, builtModule, builtHandler)
	}
	for name, value := range m.Env {
		if current, ok := os.LookupEnv(name); ok && current == value {
			// Already so: an in-process function's front (native.go) was started with the
			// function's environment, and its other threads may be reading it.
			continue
		}
		if err := os.Setenv(name, value); err != nil {
			return nil, fmt.Errorf("cannot set the environment variable %q: %v", name, err)
		}
	}
	w := &worker{context: functions.Context{
		FunctionName: m.Context.FunctionName,
		Timeout:      m.Context.Timeout.String(),
		Runtime:      m.Context.Runtime,
		MemoryLimit:  m.Context.MemoryLimit,
	}}
	if seconds, err := strconv.ParseFloat(m.Context.Timeout.String(), 64); err == nil && seconds > 0 {
		// Kubeless's Timeout is FUNC_TIMEOUT as written: "180", not "180.0".
		w.context.Timeout = strconv.FormatFloat(seconds, 'f', -1, 64)
		w.timeout = time.Duration(seconds * float64(time.Second))
	}
	return w, nil
}

// blockingSocket is a connected Unix socket read and written with plain blocking system calls.
// A worker serves one request at a time and has nothing else to do while it waits for the next:
// Go's network poller (a goroutine parked on epoll, woken through a futex) cost it more CPU
// per request than the whole Python worker's, in thread wake-ups, and so does a blocking read the
// scheduler hears of (its monitor hands the processor to another thread after 20 µs, and takes it
// back when the request comes). So the worker waits for the next request holding its processor,
// with a raw poll, for up to rawWait; only a worker idle longer blocks the way the scheduler knows.
type blockingSocket int

// rawWait is how long a worker waits for its next request holding its processor (a busy
// worker's next request comes sooner).
const rawWait = 20 * time.Millisecond

// readable waits up to d, holding the processor, for data (or the end) on the socket.
func (s blockingSocket) readable(d time.Duration) bool {
	fds := [1]pollFd{{fd: int32(s), events: pollIn}}
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline).Milliseconds()
		if left < 0 {
			left = 0
		}
		n, _, errno := syscall.RawSyscall(syscall.SYS_POLL, uintptr(unsafe.Pointer(&fds[0])), 1, uintptr(left))
		if errno == syscall.EINTR && left > 0 {
			// The scheduler's preemption signal (it sees a goroutine running): wait out the rest.
			continue
		}
		return errno == 0 && n > 0
	}
}

// pollFd is Linux's struct pollfd.
type pollFd struct {
	fd      int32
	events  int16
	revents int16
}

// pollIn is POLLIN.
const pollIn = 0x1

// dial connects a blocking Unix stream socket to path.
func dial(path string) (blockingSocket, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := syscall.Connect(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return blockingSocket(fd), nil
}

func (s blockingSocket) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		var n uintptr
		var errno syscall.Errno
		if s.readable(rawWait) {
			// Data is there: a raw read, which the scheduler does not hear of.
			n, _, errno = syscall.RawSyscall(syscall.SYS_READ, uintptr(s), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		} else {
			// Idle: a read the scheduler knows blocks, so it lets the processor and its
			// monitor sleep.
			n, _, errno = syscall.Syscall(syscall.SYS_READ, uintptr(s), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		}
		switch {
		case errno == syscall.EINTR:
			continue
		case errno != 0:
			return 0, errno
		case n == 0:
			return 0, io.EOF
		}
		return int(n), nil
	}
}

func (s blockingSocket) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		n, err := syscall.Write(int(s), p[written:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return written, err
		}
		written += n
	}
	return written, nil
}

func main() {
	// One request at a time: a second processor would only add the scheduler's thread wake-ups
	// (the front runs as many workers as it wants in parallel). GOMAXPROCS in the function's
	// environment says otherwise.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	path := os.Getenv("KELP_WORKER_SOCKET")
	if path == "" {
		fmt.Fprintln(os.Stderr, "kelp worker: KELP_WORKER_SOCKET is not set")
		os.Exit(2)
	}
	socket, err := dial(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kelp worker: cannot connect to %s: %v\n", path, err)
		os.Exit(2)
	}
	c := &conn{r: bufio.NewReaderSize(socket, 64<<10), w: bufio.NewWriterSize(socket, 64<<10)}
	version := strings.TrimPrefix(runtime.Version(), "go")
	if c.write(hello{Type: "hello", Pid: os.Getpid(), Version: version}, nil) != nil {
		os.Exit(0)
	}
	header, _, err := c.read()
	if err != nil {
		os.Exit(0)
	}
	var m load
	if err := json.Unmarshal(header, &m); err != nil || m.Type != "load" {
		fmt.Fprintf(os.Stderr, "kelp worker: expected a \"load\" message, got %.200s\n", header)
		os.Exit(1)
	}
	w, err := loaded(&m)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kelp worker: %v\n", err)
		c.write(loadError{Type: "load_error", Message: err.Error()}, nil)
		os.Exit(1)
	}
	if c.write(map[string]string{"type": "loaded"}, nil) != nil {
		os.Exit(0)
	}
	for {
		header, body, err := c.read()
		if err != nil {
			os.Exit(0)
		}
		var m invoke
		if err := decodeInvoke(header, &m); err != nil || m.Type != "invoke" {
			fmt.Fprintf(os.Stderr, "kelp worker: ignoring an unexpected message %.200s\n", header)
			continue
		}
		res, out := w.call(&m, body)
		if c.send(resultFrame(res, out)) != nil {
			os.Exit(0)
		}
	}
}
