package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The admin paths answer: the metrics, the status page, the profile index
// and an execution trace (the tracer's record starts "go 1.").
func TestAdminMux(t *testing.T) {
	status := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("status")) })
	mux := adminMux(prometheus.NewRegistry(), status)
	for _, c := range []struct{ path, want string }{
		{"/server-status", "status"},
		{"/debug/pprof/", "goroutine"},
		{"/debug/pprof/trace?seconds=0.05", "go 1."},
	} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("GET %s: %d, body %.80q; want 200 with %q", c.path, rec.Code, rec.Body.String(), c.want)
		}
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("GET /metrics: %d", rec.Code)
	}
}
