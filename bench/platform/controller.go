package main

// The `controller` subcommand, the client side of bench/controller.sh: create N Functions and
// follow, through watches opened before the first create, their children (ConfigMap, Service,
// Deployment owned by a Function) and their readiness, until every one is Ready.

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// kubeconfig reads server, CA and client certificate from a kubeconfig with one cluster and
// one user whose data are embedded (`*-data` keys), as kelp-testenv writes it; no YAML parser,
// just those four keys (the first of each).
func (c *common) kubeconfig(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	keys := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		if _, seen := keys[k]; !seen {
			keys[k] = strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	decode := func(k string) ([]byte, error) {
		if keys[k] == "" {
			return nil, fmt.Errorf("%s: no %s", path, k)
		}
		return base64.StdEncoding.DecodeString(keys[k])
	}
	ca, err := decode("certificate-authority-data")
	if err != nil {
		return err
	}
	cert, err := decode("client-certificate-data")
	if err != nil {
		return err
	}
	key, err := decode("client-key-data")
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return fmt.Errorf("%s: no certificate in certificate-authority-data", path)
	}
	if c.server == "" {
		c.server = keys["server"] // "server: https://...": cut at its first colon
	}
	c.tlsConfig = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}
	return nil
}

// watched is what a watch event carries that this benchmark reads.
type watched struct {
	Metadata struct {
		Name            string `json:"name"`
		ResourceVersion string `json:"resourceVersion"`
		Generation      int64  `json:"generation"`
		OwnerReferences []struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"ownerReferences"`
	} `json:"metadata"`
	Status struct {
		AvailableReplicas  int   `json:"availableReplicas"`
		ObservedGeneration int64 `json:"observedGeneration"`
		Conditions         []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
	} `json:"status"`
}

// owner is the name of the Function owning the object, "" when none does.
func (w *watched) owner() string {
	for _, ref := range w.Metadata.OwnerReferences {
		if ref.Kind == "Function" {
			return ref.Name
		}
	}
	return ""
}

// tracker records, per kind, when each name was first seen (children) or first Ready.
type tracker struct {
	mu    sync.Mutex
	start time.Time
	n     int
	// kind -> names seen; kind -> when the count reached n.
	seen map[string]map[string]bool
	full map[string]time.Duration
	done chan struct{}
	// what completes the run: "functions-ready" or "deployments-available".
	goal string
}

func (t *tracker) mark(kind, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[kind] == nil {
		t.seen[kind] = map[string]bool{}
	}
	if t.seen[kind][name] {
		return
	}
	t.seen[kind][name] = true
	if len(t.seen[kind]) == t.n {
		t.full[kind] = time.Since(t.start)
		if kind == t.goal {
			close(t.done)
		}
	}
}

func (t *tracker) count(kind string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seen[kind])
}

// event handles one object of `resource` (functions, configmaps, services, deployments).
func (t *tracker) event(resource string, w *watched, prefix string) {
	switch resource {
	case "functions":
		if !strings.HasPrefix(w.Metadata.Name, prefix) {
			return
		}
		s := w.Status
		for _, cond := range s.Conditions {
			if cond.Type == "Ready" && cond.Status == "True" &&
				(s.ObservedGeneration == 0 || s.ObservedGeneration == w.Metadata.Generation) {
				t.mark("functions-ready", w.Metadata.Name)
			}
		}
	default:
		owner := w.owner()
		if owner == "" || !strings.HasPrefix(owner, prefix) {
			return
		}
		t.mark(resource, owner)
		if resource == "deployments" && w.Status.AvailableReplicas >= 1 {
			t.mark("deployments-available", owner)
		}
	}
}

// watch lists `path` then watches it from the list's resourceVersion, handing every object to
// handle; `established` is closed once the first watch answered (its headers arrived). On the
// end of a watch (server timeout, Gone) it lists and watches again.
func (c *common) watch(path string, handle func(*watched), established chan<- struct{}) {
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: c.tlsConfig,
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	first := true
	for {
		var list struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
			Items []watched `json:"items"`
		}
		check(json.Unmarshal(c.expect(cl, "GET", path, "", nil, 200), &list))
		for i := range list.Items {
			handle(&list.Items[i])
		}
		q := url.Values{"watch": {"1"}, "resourceVersion": {list.Metadata.ResourceVersion},
			"allowWatchBookmarks": {"true"}, "timeoutSeconds": {"3600"}}
		req, err := http.NewRequest("GET", c.server+path+"?"+q.Encode(), nil)
		check(err)
		req.Header.Set("Accept", "application/json")
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := cl.Do(req)
		if err != nil {
			fail("watch %s: %v", path, err)
		}
		if resp.StatusCode != 200 {
			fail("watch %s: status %d", path, resp.StatusCode)
		}
		if first {
			close(established)
			first = false
		}
		dec := json.NewDecoder(bufio.NewReaderSize(resp.Body, 1<<16))
		for {
			var ev struct {
				Type   string  `json:"type"`
				Object watched `json:"object"`
			}
			if err := dec.Decode(&ev); err != nil {
				break // end of this watch: list and watch again
			}
			if ev.Type == "ADDED" || ev.Type == "MODIFIED" {
				handle(&ev.Object)
			}
			if ev.Type == "ERROR" {
				break // e.g. 410 Gone
			}
		}
		resp.Body.Close()
	}
}

// sumTicks is the CPU (clock ticks) of the given processes and their descendants.
func sumTicks(pids []int) int64 {
	var sum int64
	for _, root := range pids {
		for _, p := range tree(fmt.Sprint(root)) {
			sum += procTicks(p)
		}
	}
	return sum
}

func pidList(fs *flag.FlagSet, name, usage string) *[]int {
	var pids []int
	fs.Func(name, usage, func(v string) error {
		for _, p := range strings.Split(v, ",") {
			var pid int
			if _, err := fmt.Sscan(p, &pid); err != nil {
				return err
			}
			pids = append(pids, pid)
		}
		return nil
	})
	return &pids
}

func cmdController(args []string) {
	fs := flag.NewFlagSet("controller", flag.ExitOnError)
	var c common
	c.register(fs) // -pids: the controller's process(es)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig with embedded data (server, CA, client certificate)")
	f, codeFile := specFlags(fs)
	n := fs.Int("n", 100, "Functions")
	clients := fs.Int("clients", 4, "concurrent clients creating the Functions")
	goal := fs.String("ready", "status", "what Ready means: status (the Function's Ready condition, Kelp) "+
		"or deployment (its Deployment has an available replica, Kubeless)")
	timeout := fs.Duration("timeout", 30*time.Minute, "give up after this long")
	planePids := pidList(fs, "plane-pids", "comma-separated PIDs of the control plane (with descendants), for its CPU")
	check(fs.Parse(args))
	if *kubeconfig != "" {
		check(c.kubeconfig(*kubeconfig))
	}
	c.setup()
	loadCode(f, *codeFile)
	prefix := f.name + "-"
	t := &tracker{n: *n, seen: map[string]map[string]bool{}, full: map[string]time.Duration{}, done: make(chan struct{})}
	switch *goal {
	case "status":
		t.goal = "functions-ready"
	case "deployment":
		t.goal = "deployments-available"
	default:
		fail("-ready must be status or deployment")
	}

	// Watches first, so that nothing the controller does is missed; the clock starts after.
	resources := map[string]string{
		"functions":   fmt.Sprintf(functionsPath, c.ns),
		"configmaps":  fmt.Sprintf("/api/v1/namespaces/%s/configmaps", c.ns),
		"services":    fmt.Sprintf("/api/v1/namespaces/%s/services", c.ns),
		"deployments": fmt.Sprintf("/apis/apps/v1/namespaces/%s/deployments", c.ns),
	}
	var ready []chan struct{}
	t.start = time.Now()
	for resource, path := range resources {
		ch := make(chan struct{})
		ready = append(ready, ch)
		go c.watch(path, func(w *watched) { t.event(resource, w, prefix) }, ch)
	}
	for _, ch := range ready {
		<-ch
	}

	snap0, plane0 := snapshot(), sumTicks(*planePids)
	t.mu.Lock()
	t.start = time.Now()
	t.mu.Unlock()
	base := fmt.Sprintf(functionsPath, c.ns)
	stop := make(chan struct{})
	go func() { // progress, every 5 s
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				fmt.Fprintf(os.Stderr, "[bench] %5.0f s: children %d/%d/%d (ConfigMaps/Services/Deployments), "+
					"Deployments available %d, Functions Ready %d, of %d\n", time.Since(t.start).Seconds(),
					t.count("configmaps"), t.count("services"), t.count("deployments"),
					t.count("deployments-available"), t.count("functions-ready"), *n)
			}
		}
	}()
	lat, created := parallel(&c, *clients, *n, func(cl *http.Client, i int) {
		g := *f
		g.name = fmt.Sprintf("%s%d", prefix, i)
		c.expect(cl, "POST", base, "application/json", g.json(c.ns), 201)
	})
	select {
	case <-t.done:
	case <-time.After(*timeout - time.Since(t.start)):
		close(stop)
		fail("not every Function Ready (%s) within %v: %d of %d", *goal, *timeout, t.count(t.goal), *n)
	}
	snap1, plane1 := snapshot(), sumTicks(*planePids)
	close(stop)

	t.mu.Lock()
	defer t.mu.Unlock()
	secs := func(kind string) any {
		if d, ok := t.full[kind]; ok {
			return d.Seconds()
		}
		return nil
	}
	lastChild := 0.0
	for _, kind := range []string{"configmaps", "services", "deployments"} {
		if d, ok := t.full[kind]; ok {
			lastChild = max(lastChild, d.Seconds())
		} else {
			lastChild = -1 // some child never seen: reported as null below
			break
		}
	}
	out := map[string]any{
		"n": *n, "ready": *goal, "clients": *clients,
		"created_s":                   created.Seconds(),
		"create":                      summarise(lat, created, cpuSnap{}, cpuSnap{}),
		"last_configmap_s":            secs("configmaps"),
		"last_service_s":              secs("services"),
		"last_deployment_s":           secs("deployments"),
		"all_deployments_available_s": secs("deployments-available"),
		"all_functions_ready_s":       secs("functions-ready"),
		"all_ready_s":                 t.full[t.goal].Seconds(),
		"controller_cpu_s":            float64(snap1.server-snap0.server) / clockTicks,
		"plane_cpu_s":                 float64(plane1-plane0) / clockTicks,
		"client_cpu_s":                float64(snap1.self-snap0.self) / clockTicks,
	}
	// The share of the machine's CPU that processes other than these used meanwhile (%).
	if all := snap1.all - snap0.all; all > 0 {
		ours := (snap1.server - snap0.server) + (plane1 - plane0) + (snap1.self - snap0.self)
		out["machine_busy_pct"] = 100 * float64(snap1.busy-snap0.busy) / float64(all)
		out["other_pct"] = max(0, 100*float64(snap1.busy-snap0.busy-ours)/float64(all))
	}
	if lastChild >= 0 {
		out["last_child_s"] = lastChild
	} else {
		out["last_child_s"] = nil
	}
	emit(out)
}
