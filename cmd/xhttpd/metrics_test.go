package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xhttpd/xhttpd/httpd"
)

type failingLog struct{}

func (failingLog) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// The collector exports the HTTP server's counters; on the kernel stack
// (no data path) it exports nothing else. Failed access log writes are
// among them.
func TestCollectorAccessLogErrors(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "index.html"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := httpd.New(httpd.Config{Root: root, AccessLog: failingLog{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	resp, err := http.Get("http://" + l.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	if err := srv.Shutdown(context.Background()); err != nil { // writes out the line, and fails
		t.Fatal(err)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newCollector(nil, srv))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 0 && m.GetCounter() != nil {
				got[mf.GetName()] = m.GetCounter().GetValue()
			}
		}
	}
	for name, want := range map[string]float64{
		"xhttpd_http_requests_total":                1,
		"xhttpd_http_access_log_write_errors_total": 1,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
}
