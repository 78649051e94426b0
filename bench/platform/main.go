// Command platform-bench is the client side of bench/platform.sh: a Kubernetes-API client in the
// shape of kubectl and client-go (Go net/http, HTTP/1.1 keep-alive, one connection per client,
// JSON bodies, gzip accepted), standard library only, so the same program measures `kelp up` and
// the real kube-apiserver. Every subcommand prints one JSON object on stdout (times in ms) and
// exits 1, with the reason on stderr, when a request fails or answers an unexpected status.
//
//	api       create, get, list and delete N Functions with C concurrent clients
//	ceiling   GET /version with C concurrent clients: this client and the server's HTTP stack alone
//	crds      install CRD manifests (YAML) and wait until they are Established
//	function  create one Function from flags (code from a file)
//	cold      time the first call to a function scaled to zero, RUNS times
//	deploy    time create -> first 200 through the gateway, RUNS times (each Function deleted after)
//	wait-gone wait until a function has no pods (instances)
//	controller create N Functions and time their children and readiness (bench/controller.sh;
//	          controller.go), authenticated by -kubeconfig FILE
//
// Common flags: -server URL, -token TOKEN (sent as a bearer token), -ca FILE (PEM, for https),
// -ns NAMESPACE (default "default").
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const functionsPath = "/apis/kubeless.io/v1beta1/namespaces/%s/functions"

type common struct {
	server, token, ca, ns string
	tlsConfig             *tls.Config
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", "", "API server URL, e.g. http://127.0.0.1:8080")
	fs.StringVar(&c.token, "token", "", "bearer token")
	fs.StringVar(&c.ca, "ca", "", "PEM file of the certificate authority (https)")
	fs.StringVar(&c.ns, "ns", "default", "namespace")
	fs.Func("pids", "comma-separated PIDs of the server's processes (with their descendants), for CPU per op",
		func(v string) error {
			for _, p := range strings.Split(v, ",") {
				var pid int
				if _, err := fmt.Sscan(p, &pid); err != nil {
					return err
				}
				serverPids = append(serverPids, pid)
			}
			return nil
		})
}

func (c *common) setup() {
	if c.server == "" {
		fail("-server is required")
	}
	c.server = strings.TrimRight(c.server, "/")
	if c.ca != "" {
		pem, err := os.ReadFile(c.ca)
		check(err)
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fail("no certificate in %s", c.ca)
		}
		c.tlsConfig = &tls.Config{RootCAs: pool}
	}
}

// client is one HTTP/1.1 connection, kept alive (as one kubectl or controller process would use).
func (c *common) client() *http.Client {
	tr := &http.Transport{
		MaxIdleConns:        1,
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
		IdleConnTimeout:     5 * time.Minute,
		TLSClientConfig:     c.tlsConfig,
		// HTTP/1.1 against both servers, so that both see the same client.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// do sends one request, reads the whole body and returns it with the status.
func (c *common) do(cl *http.Client, method, path, contentType string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.server+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// expect is do that fails unless the status is one of want.
func (c *common) expect(cl *http.Client, method, path, contentType string, body []byte, want ...int) []byte {
	status, data, err := c.do(cl, method, path, contentType, body)
	if err != nil {
		fail("%s %s: %v", method, path, err)
	}
	for _, w := range want {
		if status == w {
			return data
		}
	}
	fail("%s %s: status %d, expected %v: %s", method, path, status, want, truncate(data))
	return nil
}

// ---------------------------------------------------------------------------------------------
// Functions.

type functionSpec struct {
	name, code, handler, runtime string
	idle                         string // kelp.dev/idle-timeout annotation, "" for none
	maxInstances                 int    // > 0: an autoscaler with minReplicas 1, maxReplicas this
}

func (f functionSpec) json(ns string) []byte {
	meta := map[string]any{"name": f.name, "namespace": ns, "labels": map[string]string{"bench": "yes"}}
	if f.idle != "" {
		meta["annotations"] = map[string]string{"kelp.dev/idle-timeout": f.idle}
	}
	spec := map[string]any{
		"handler": f.handler, "runtime": f.runtime, "function": f.code, "deps": "",
		"function-content-type": "text", "timeout": "180",
	}
	if f.maxInstances > 0 {
		spec["horizontalPodAutoscaler"] = map[string]any{
			"apiVersion": "autoscaling/v2beta1", "kind": "HorizontalPodAutoscaler",
			"metadata": map[string]any{"name": f.name, "namespace": ns},
			"spec": map[string]any{
				"scaleTargetRef": map[string]any{"apiVersion": "apps/v1beta1", "kind": "Deployment", "name": f.name},
				"minReplicas":    1, "maxReplicas": f.maxInstances,
				"metrics": []any{map[string]any{"type": "Resource",
					"resource": map[string]any{"name": "cpu", "targetAverageUtilization": 70}}},
			},
		}
	}
	body, err := json.Marshal(map[string]any{
		"apiVersion": "kubeless.io/v1beta1", "kind": "Function", "metadata": meta, "spec": spec})
	check(err)
	return body
}

// benchBody is the Function the API benchmark creates: the body of
// crates/kelp-apiserver/examples/create_bench.rs, ~330 bytes.
func benchBody(name string) []byte {
	return []byte(fmt.Sprintf(`{"apiVersion":"kubeless.io/v1beta1","kind":"Function","metadata":{"name":%q,"labels":{"bench":"yes"}},"spec":{"handler":"hello.handler","runtime":"python3.8","function":"def handler(event, context):\n    return 'hi'\n","timeout":"180"}}`, name))
}

// ---------------------------------------------------------------------------------------------
// Statistics.

type stats struct {
	Ops int `json:"ops"`
	// CPU per operation (µs) of the server's processes (-pids and their descendants) and of this
	// client, and the share of the machine's CPU other processes used meanwhile (%).
	ServerCPU float64 `json:"server_cpu_us_per_op"`
	ClientCPU float64 `json:"client_cpu_us_per_op"`
	OtherPct  float64 `json:"other_pct"`
	Seconds   float64 `json:"seconds"`
	OpsPerS   float64 `json:"ops_per_s"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	Max       float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func summarise(lat []time.Duration, total time.Duration, before, after cpuSnap) stats {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	perOp := 1e6 / float64(clockTicks) / float64(len(lat))
	server, self := after.server-before.server, after.self-before.self
	other := 0.0
	if all := after.all - before.all; all > 0 {
		other = 100 * float64(after.busy-before.busy-server-self) / float64(all)
	}
	return stats{
		Ops: len(lat), Seconds: total.Seconds(), OpsPerS: float64(len(lat)) / total.Seconds(),
		P50: ms(percentile(lat, 0.50)), P99: ms(percentile(lat, 0.99)), Max: ms(lat[len(lat)-1]),
		ServerCPU: float64(server) * perOp, ClientCPU: float64(self) * perOp, OtherPct: max(other, 0),
	}
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc, in clock ticks.

const clockTicks = 100 // USER_HZ on Linux

var serverPids []int

type cpuSnap struct{ busy, all, server, self int64 }

// procTicks is utime + stime of one process (all its threads), 0 if it is gone.
func procTicks(pid string) int64 {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	var u, s int64
	fmt.Sscan(f[11], &u)
	fmt.Sscan(f[12], &s)
	return u + s
}

// tree is pid and every process below it.
func tree(pid string) []string {
	out, todo := []string{}, []string{pid}
	for len(todo) > 0 {
		p := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		out = append(out, p)
		tasks, _ := filepath.Glob("/proc/" + p + "/task/*/children")
		for _, t := range tasks {
			data, _ := os.ReadFile(t)
			todo = append(todo, strings.Fields(string(data))...)
		}
	}
	return out
}

func snapshot() cpuSnap {
	var c cpuSnap
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		v := make([]int64, 9)
		for i := 1; i < len(f) && i < 9; i++ {
			fmt.Sscan(f[i], &v[i])
		}
		c.busy = v[1] + v[2] + v[3] + v[6] + v[7] + v[8]
		c.all = c.busy + v[4] + v[5]
	}
	for _, root := range serverPids {
		for _, p := range tree(fmt.Sprint(root)) {
			c.server += procTicks(p)
		}
	}
	c.self = procTicks(fmt.Sprint(os.Getpid()))
	return c
}

// measure runs parallel() between two CPU snapshots and summarises it.
func measure(c *common, clients, n int, op func(cl *http.Client, i int)) stats {
	before := snapshot()
	lat, total := parallel(c, clients, n, op)
	return summarise(lat, total, before, snapshot())
}

type sample struct {
	Median  float64   `json:"median_ms"`
	Min     float64   `json:"min_ms"`
	Max     float64   `json:"max_ms"`
	Samples []float64 `json:"samples_ms"`
}

func samples(xs []float64) sample {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return sample{Median: med, Min: s[0], Max: s[len(s)-1], Samples: xs}
}

// parallel runs op(client, i) for i in [0, n) on `clients` goroutines, each with its own
// connection taking the next index; returns every op's latency and the wall time.
func parallel(c *common, clients, n int, op func(cl *http.Client, i int)) ([]time.Duration, time.Duration) {
	var next atomic.Int64
	lat := make([]time.Duration, n)
	conns := make([]*http.Client, clients)
	for k := range conns {
		conns[k] = c.client()
	}
	var wg sync.WaitGroup
	start := time.Now()
	for k := 0; k < clients; k++ {
		wg.Add(1)
		go func(cl *http.Client) {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t := time.Now()
				op(cl, i)
				lat[i] = time.Since(t)
			}
		}(conns[k])
	}
	wg.Wait()
	total := time.Since(start)
	for _, cl := range conns {
		cl.CloseIdleConnections()
	}
	return lat, total
}

// ---------------------------------------------------------------------------------------------
// Subcommands.

func cmdAPI(args []string) {
	fs := flag.NewFlagSet("api", flag.ExitOnError)
	var c common
	c.register(fs)
	n := fs.Int("n", 1000, "Functions")
	clients := fs.Int("clients", 1, "concurrent clients (one connection each)")
	lists := fs.Int("lists", 10, "lists of all the Functions")
	prefix := fs.String("prefix", "bench", "name prefix")
	warm := fs.Int("warmup", 50, "creates (then deletes) before measuring")
	settle := fs.Duration("settle", time.Second, "pause between phases")
	check(fs.Parse(args))
	c.setup()
	base := fmt.Sprintf(functionsPath, c.ns)
	name := func(p string, i int) string { return fmt.Sprintf("%s-%d", p, i) }

	if *warm > 0 {
		parallel(&c, *clients, *warm, func(cl *http.Client, i int) {
			c.expect(cl, "POST", base, "application/json", benchBody(name(*prefix+"-warm", i)), 201)
		})
		parallel(&c, *clients, *warm, func(cl *http.Client, i int) {
			c.expect(cl, "DELETE", base+"/"+name(*prefix+"-warm", i), "", nil, 200, 202)
		})
		time.Sleep(*settle)
	}
	out := map[string]any{"n": *n, "clients": *clients}
	out["create"] = measure(&c, *clients, *n, func(cl *http.Client, i int) {
		c.expect(cl, "POST", base, "application/json", benchBody(name(*prefix, i)), 201)
	})
	time.Sleep(*settle)
	out["get"] = measure(&c, *clients, *n, func(cl *http.Client, i int) {
		c.expect(cl, "GET", base+"/"+name(*prefix, i), "", nil, 200)
	})
	time.Sleep(*settle)
	// Lists: the whole namespace, label selector of the benchmark's objects.
	listPath := base + "?labelSelector=bench%3Dyes"
	var bytesPerList atomic.Int64
	out["list"] = measure(&c, *clients, *lists, func(cl *http.Client, i int) {
		data := c.expect(cl, "GET", listPath, "", nil, 200)
		bytesPerList.Store(int64(len(data)))
	})
	// Checked outside the timings: the list holds the N objects.
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	check(json.Unmarshal(c.expect(c.client(), "GET", listPath, "", nil, 200), &list))
	if len(list.Items) != *n {
		fail("list returned %d items, expected %d", len(list.Items), *n)
	}
	out["list_bytes"] = bytesPerList.Load()
	time.Sleep(*settle)
	out["delete"] = measure(&c, *clients, *n, func(cl *http.Client, i int) {
		c.expect(cl, "DELETE", base+"/"+name(*prefix, i), "", nil, 200, 202)
	})
	emit(out)
}

func cmdCeiling(args []string) {
	fs := flag.NewFlagSet("ceiling", flag.ExitOnError)
	var c common
	c.register(fs)
	n := fs.Int("n", 5000, "requests")
	clients := fs.Int("clients", 1, "concurrent clients")
	path := fs.String("path", "/version", "path to GET")
	check(fs.Parse(args))
	c.setup()
	op := func(cl *http.Client, i int) { c.expect(cl, "GET", *path, "", nil, 200) }
	parallel(&c, *clients, *n/5, op) // warm-up
	emit(map[string]any{"clients": *clients, "get": measure(&c, *clients, *n, op)})
}

func cmdCRDs(args []string) {
	fs := flag.NewFlagSet("crds", flag.ExitOnError)
	var c common
	c.register(fs)
	timeout := fs.Duration("timeout", 60*time.Second, "how long to wait for Established")
	check(fs.Parse(args))
	c.setup()
	cl := c.client()
	const crdPath = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
	var names []string
	for _, file := range fs.Args() {
		body, err := os.ReadFile(file)
		check(err)
		c.expect(cl, "POST", crdPath, "application/yaml", body, 201, 409)
		// kubeless.io_functions.yaml -> functions.kubeless.io
		group, plural, ok := strings.Cut(strings.TrimSuffix(filepath.Base(file), ".yaml"), "_")
		if !ok {
			fail("cannot tell the CRD name from the file name %s", file)
		}
		names = append(names, plural+"."+group)
	}
	deadline := time.Now().Add(*timeout)
	for _, name := range names {
		for {
			var crd struct {
				Status struct {
					Conditions []struct{ Type, Status string } `json:"conditions"`
				} `json:"status"`
			}
			check(json.Unmarshal(c.expect(cl, "GET", crdPath+"/"+name, "", nil, 200), &crd))
			established := false
			for _, cond := range crd.Status.Conditions {
				established = established || (cond.Type == "Established" && cond.Status == "True")
			}
			if established {
				break
			}
			if time.Now().After(deadline) {
				fail("CRD %s not Established after %v", name, *timeout)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Served: the list answers.
	for {
		status, _, err := c.do(cl, "GET", fmt.Sprintf(functionsPath, c.ns), "", nil)
		if err == nil && status == 200 {
			break
		}
		if time.Now().After(deadline) {
			fail("functions not served %v after the CRDs were created (status %d, %v)", *timeout, status, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	emit(map[string]any{"crds": names})
}

func specFlags(fs *flag.FlagSet) (*functionSpec, *string) {
	f := &functionSpec{}
	codeFile := fs.String("code", "", "file holding the function's code")
	fs.StringVar(&f.name, "name", "", "Function name (prefix for deploy)")
	fs.StringVar(&f.handler, "handler", "bench.hello", "module.function")
	fs.StringVar(&f.runtime, "runtime", "python3.8", "Kubeless runtime")
	fs.StringVar(&f.idle, "idle", "", "kelp.dev/idle-timeout annotation")
	fs.IntVar(&f.maxInstances, "max", 0, "> 0: autoscaler with minReplicas 1 and this maxReplicas")
	return f, codeFile
}

func loadCode(f *functionSpec, codeFile string) {
	if f.name == "" || codeFile == "" {
		fail("-name and -code are required")
	}
	code, err := os.ReadFile(codeFile)
	check(err)
	f.code = string(code)
}

func cmdFunction(args []string) {
	fs := flag.NewFlagSet("function", flag.ExitOnError)
	var c common
	c.register(fs)
	f, codeFile := specFlags(fs)
	check(fs.Parse(args))
	c.setup()
	loadCode(f, *codeFile)
	c.expect(c.client(), "POST", fmt.Sprintf(functionsPath, c.ns), "application/json", f.json(c.ns), 201)
	emit(map[string]any{"created": f.name})
}

// podsOf is the number of pods (instances) the function has.
func podsOf(c *common, cl *http.Client, name string) int {
	var pods struct {
		Items []json.RawMessage `json:"items"`
	}
	data := c.expect(cl, "GET", fmt.Sprintf("/api/v1/namespaces/%s/pods?labelSelector=function%%3D%s", c.ns, name), "", nil, 200)
	check(json.Unmarshal(data, &pods))
	return len(pods.Items)
}

func waitGone(c *common, cl *http.Client, name string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for podsOf(c, cl, name) > 0 {
		if time.Now().After(deadline) {
			fail("function %s still has pods after %v", name, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func cmdWaitGone(args []string) {
	fs := flag.NewFlagSet("wait-gone", flag.ExitOnError)
	var c common
	c.register(fs)
	name := fs.String("name", "", "function")
	timeout := fs.Duration("timeout", 60*time.Second, "")
	check(fs.Parse(args))
	c.setup()
	start := time.Now()
	waitGone(&c, c.client(), *name, *timeout)
	emit(map[string]any{"waited_ms": ms(time.Since(start))})
}

// firstCall times one GET on a fresh connection, from before connecting to the last byte of a 200.
func firstCall(url string, timeout time.Duration) (time.Duration, int, []byte, error) {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: timeout}
	start := time.Now()
	resp, err := cl.Get(url)
	if err != nil {
		return 0, 0, nil, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return time.Since(start), resp.StatusCode, data, err
}

func cmdCold(args []string) {
	fs := flag.NewFlagSet("cold", flag.ExitOnError)
	var c common
	c.register(fs)
	name := fs.String("name", "", "function (already deployed, with a short idle timeout)")
	url := fs.String("url", "", "the function's URL through the gateway")
	expect := fs.String("expect", "hello world", "expected body")
	runs := fs.Int("runs", 20, "measured first calls")
	discard := fs.Int("discard", 1, "first calls not counted")
	settle := fs.Duration("settle", 500*time.Millisecond, "pause after the last pod is gone")
	timeout := fs.Duration("timeout", 120*time.Second, "scale-to-zero wait and call timeout")
	check(fs.Parse(args))
	c.setup()
	cl := c.client()
	var xs []float64
	for i := 0; i < *discard+*runs; i++ {
		waitGone(&c, cl, *name, *timeout)
		time.Sleep(*settle)
		if podsOf(&c, cl, *name) > 0 {
			fail("function %s has a pod again before the call", *name)
		}
		d, status, body, err := firstCall(*url, *timeout)
		if err != nil || status != 200 || string(body) != *expect {
			fail("first call %d to %s: status %d, body %q, error %v", i, *url, status, truncate(body), err)
		}
		if i >= *discard {
			xs = append(xs, ms(d))
		}
		fmt.Fprintf(os.Stderr, "[bench] cold %s #%d: %.2f ms\n", *name, i, ms(d))
	}
	emit(samples(xs))
}

func cmdDeploy(args []string) {
	fs := flag.NewFlagSet("deploy", flag.ExitOnError)
	var c common
	c.register(fs)
	f, codeFile := specFlags(fs)
	gateway := fs.String("gateway", "", "gateway base URL (default: -server)")
	expect := fs.String("expect", "hello world", "expected body")
	runs := fs.Int("runs", 10, "measured deploys")
	discard := fs.Int("discard", 1, "first deploys not counted")
	settle := fs.Duration("settle", 500*time.Millisecond, "pause before each deploy")
	timeout := fs.Duration("timeout", 60*time.Second, "create -> 200 timeout")
	check(fs.Parse(args))
	c.setup()
	loadCode(f, *codeFile)
	if *gateway == "" {
		*gateway = c.server
	}
	prefix := f.name
	api := c.client()
	var xs []float64
	for i := 0; i < *discard+*runs; i++ {
		f.name = fmt.Sprintf("%s-%d", prefix, i)
		url := fmt.Sprintf("%s/%s/%s/", strings.TrimRight(*gateway, "/"), c.ns, f.name)
		body := f.json(c.ns)
		poll := c.client() // a second connection for the polls, kept alive
		time.Sleep(*settle)
		start := time.Now()
		c.expect(api, "POST", fmt.Sprintf(functionsPath, c.ns), "application/json", body, 201)
		var last string
		for {
			ctx, cancel := context.WithTimeout(context.Background(), *timeout)
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			resp, err := poll.Do(req)
			if err == nil {
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					cancel()
					if string(data) != *expect {
						fail("%s answered %q, expected %q", url, truncate(data), *expect)
					}
					break
				}
				last = fmt.Sprintf("status %d: %s", resp.StatusCode, truncate(data))
			} else {
				last = err.Error()
			}
			cancel()
			if time.Since(start) > *timeout {
				fail("%s: no 200 %v after the create (last: %s)", url, *timeout, last)
			}
			time.Sleep(time.Millisecond)
		}
		d := time.Since(start)
		poll.CloseIdleConnections()
		if i >= *discard {
			xs = append(xs, ms(d))
		}
		fmt.Fprintf(os.Stderr, "[bench] deploy %s: %.1f ms (last non-200: %s)\n", f.name, ms(d), last)
		c.expect(api, "DELETE", fmt.Sprintf(functionsPath, c.ns)+"/"+f.name, "", nil, 200, 202)
		waitGone(&c, api, f.name, *timeout)
	}
	emit(samples(xs))
}

// ---------------------------------------------------------------------------------------------

func emit(v any) {
	out, err := json.Marshal(v)
	check(err)
	fmt.Println(string(out))
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "platform-bench: "+format+"\n", args...)
	os.Exit(1)
}

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func main() {
	commands := map[string]func([]string){
		"api": cmdAPI, "ceiling": cmdCeiling, "crds": cmdCRDs, "function": cmdFunction,
		"cold": cmdCold, "deploy": cmdDeploy, "wait-gone": cmdWaitGone, "controller": cmdController,
	}
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		fail("usage: platform-bench api|ceiling|crds|function|cold|deploy|wait-gone|controller [flags] (see the source)")
	}
	commands[os.Args[1]](os.Args[2:])
}
