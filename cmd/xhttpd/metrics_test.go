package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

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

// /metrics, scraped as Prometheus would and read with Prometheus's own
// parser: xhttpd's families beside Go's runtime and process collectors,
// the request-duration histogram by outcome, responses by code, build
// info and panics, each family once.
func TestMetricsScrape(t *testing.T) {
	root := t.TempDir()
	for name, size := range map[string]int{"small.bin": 1 << 10, "big.bin": 64 << 10} {
		if err := os.WriteFile(filepath.Join(root, name), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-time.Hour) // the cache leaves files modified within a second alone
		if err := os.Chtimes(filepath.Join(root, name), old, old); err != nil {
			t.Fatal(err)
		}
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "dynamic\n") }))
	defer up.Close()

	m := newMetrics(buildInfo{version: "v1.2.3", revision: "0123456789ab", goVersion: "go1.26.8"})
	srv, err := httpd.New(httpd.Config{Root: root, CacheMax: 4 << 10, Proxy: up.URL, Dynamic: []string{"/api/"},
		Observe: m.observe, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.register(newCollector(nil, srv)); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	want := map[string]int{"/small.bin": 200, "/big.bin": 200, "/api/x": 200, "/nope": 404}
	for _, path := range []string{"/small.bin", "/small.bin", "/big.bin", "/api/x", "/nope"} {
		resp, err := http.Get("http://" + l.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want[path] {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}
	http.DefaultClient.CloseIdleConnections()
	if err := srv.Shutdown(context.Background()); err != nil { // every response observed by then
		t.Fatal(err)
	}

	rec := httptest.NewRecorder()
	metricsHandler(m.reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d\n%s", rec.Code, text)
	}
	// No family twice: one TYPE line each.
	seen := map[string]int{}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			if seen[f[2]]++; seen[f[2]] == 2 {
				t.Errorf("family %s appears twice", f[2])
			}
		}
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus's parser: %v", err)
	}
	if len(mfs) != len(seen) {
		t.Errorf("%d families parsed, %d TYPE lines", len(mfs), len(seen))
	}
	for name, typ := range map[string]dto.MetricType{
		"xhttpd_http_request_duration_seconds": dto.MetricType_HISTOGRAM,
		"xhttpd_http_responses_total":          dto.MetricType_COUNTER,
		"xhttpd_http_panics_total":             dto.MetricType_COUNTER,
		"xhttpd_build_info":                    dto.MetricType_GAUGE,
		"xhttpd_http_requests_total":           dto.MetricType_COUNTER,
		"go_goroutines":                        dto.MetricType_GAUGE,
		"go_memstats_alloc_bytes":              dto.MetricType_GAUGE,
		"process_cpu_seconds_total":            dto.MetricType_COUNTER,
		"process_resident_memory_bytes":        dto.MetricType_GAUGE,
	} {
		if mf, ok := mfs[name]; !ok {
			t.Errorf("no family %s", name)
		} else if mf.GetType() != typ {
			t.Errorf("%s: type %v, want %v", name, mf.GetType(), typ)
		}
	}
	labels := func(m *dto.Metric) map[string]string {
		out := map[string]string{}
		for _, lp := range m.GetLabel() {
			out[lp.GetName()] = lp.GetValue()
		}
		return out
	}

	// The histogram: one series per outcome, each request in its own,
	// buckets from 10 us.
	counts := map[string]uint64{}
	for _, s := range mfs["xhttpd_http_request_duration_seconds"].GetMetric() {
		h := s.GetHistogram()
		counts[labels(s)["outcome"]] = h.GetSampleCount()
		// The parser adds the +Inf bucket to the list.
		b := h.GetBucket()
		if len(b) < len(durationBuckets) || len(b) > len(durationBuckets)+1 || b[0].GetUpperBound() != 10e-6 {
			t.Errorf("buckets %v, want upper bounds %v", b, durationBuckets)
		}
		for i := 0; i < len(b) && i < len(durationBuckets); i++ {
			if b[i].GetUpperBound() != durationBuckets[i] {
				t.Errorf("bucket %d: upper bound %v, want %v", i, b[i].GetUpperBound(), durationBuckets[i])
			}
		}
		if h.GetSampleCount() > 0 && (h.GetSampleSum() <= 0 || h.GetSampleSum() > 10) {
			t.Errorf("%v: sum %v s", labels(s), h.GetSampleSum())
		}
	}
	if want := map[string]uint64{"cached": 2, "disk": 1, "proxied": 1, "error": 1}; !maps.Equal(counts, want) {
		t.Errorf("observations by outcome %v, want %v", counts, want)
	}

	// Responses by code, and no longer by class.
	codes := map[string]float64{}
	for _, s := range mfs["xhttpd_http_responses_total"].GetMetric() {
		l := labels(s)
		if _, ok := l["class"]; ok || len(l) != 1 {
			t.Errorf("xhttpd_http_responses_total labels %v, want code alone", l)
		}
		codes[l["code"]] = s.GetCounter().GetValue()
	}
	if want := map[string]float64{"200": 4, "404": 1}; !maps.Equal(codes, want) {
		t.Errorf("responses by code %v, want %v", codes, want)
	}

	bi := mfs["xhttpd_build_info"].GetMetric()
	if want := map[string]string{"version": "v1.2.3", "revision": "0123456789ab", "goversion": "go1.26.8"}; len(bi) != 1 || !maps.Equal(labels(bi[0]), want) || bi[0].GetGauge().GetValue() != 1 {
		t.Errorf("xhttpd_build_info %v, want %v 1", bi, want)
	}
	if p := mfs["xhttpd_http_panics_total"].GetMetric(); len(p) != 1 || p[0].GetCounter().GetValue() != 0 {
		t.Errorf("xhttpd_http_panics_total %v, want 0", p)
	}
}
