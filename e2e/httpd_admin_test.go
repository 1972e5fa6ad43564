package e2e

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// What cmd/xhttpd wires around httpd: /server-status on the admin listener
// and a cache reload on SIGHUP.

// /server-status?auto after some requests: Apache's keys, the connection
// states, and a row per queue.
func TestHTTPDStatusPage(t *testing.T) {
	tb, s, _ := serve(t, "-admin", adminAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := tb.ClientHTTP()
	for range 10 {
		if err := fetch(ctx, client, "http://198.18.0.1/1k.bin", s.files["/1k.bin"]); err != nil {
			t.Fatal(err)
		}
	}
	status := func(query string) string {
		t.Helper()
		out, err := tb.ServerCmd(ctx, "curl", "-sS", "--fail", "--max-time", "5", "http://127.0.0.1:9100/server-status"+query).Output()
		if err != nil {
			t.Fatalf("/server-status%s: %v", query, err)
		}
		return string(out)
	}
	auto := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(status("?auto")), "\n") {
		k, v, _ := strings.Cut(l, ": ")
		auto[k] = v
	}
	for k, want := range map[string]string{"Queues": "1", "Queue0Mode": "hybrid", "CacheFiles": "3"} {
		if auto[k] != want {
			t.Errorf("?auto %s: %q, want %q", k, auto[k], want)
		}
	}
	if v := auto["ServerVersion"]; !strings.HasPrefix(v, "xhttpd/") {
		t.Errorf("?auto ServerVersion: %q, want xhttpd/ and the build's version", v)
	}
	for _, k := range []string{"Total Accesses", "Total kBytes", "ConnsTotal", "ConnsKeepAlive", "Scoreboard", "Queue0RxFrames"} {
		if _, ok := auto[k]; !ok {
			t.Errorf("?auto lacks %s", k)
		}
	}
	if page := status(""); !strings.Contains(page, "<h1>xhttpd status</h1>") || !strings.Contains(page, "<td>hybrid</td>") {
		t.Errorf("HTML page:\n%s", page)
	}
}

// SIGHUP reloads the cache: a file changed on disk is served as it was
// until then, and as it is now after.
func TestHTTPDReloadOnSIGHUP(t *testing.T) {
	tb, s, srv := serve(t)
	client := tb.ClientHTTP()
	get := func() string {
		t.Helper()
		resp, err := client.Get("http://198.18.0.1/index.html")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	const newIndex = "<h1>reloaded</h1>\n"
	p := filepath.Join(s.dir, "index.html")
	if err := os.WriteFile(p, []byte(newIndex), 0o644); err != nil {
		t.Fatal(err)
	}
	settle(t, s.dir)
	if got := get(); got == newIndex {
		t.Fatal("changed file served before the reload: was it cached?")
	}
	if err := srv.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for get() != newIndex {
		if time.Now().After(deadline) {
			t.Fatal("still the old file 5s after SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
