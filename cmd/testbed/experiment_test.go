package main

import (
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Offered rates: the fractions of saturation and the shared rates a server
// sustains, by rate, a shared rate that a fraction lands on kept once.
func TestOfferedRates(t *testing.T) {
	got := offeredRates(20000, []float64{0.1, 0.25, 0.5}, []float64{1000, 5000, 30000})
	want := []offered{{1000, 0}, {2000, 0.1}, {5000, 0}, {10000, 0.5}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func point(server string, fraction, offered float64, p99 int64, cpu float64) expPoint {
	return expPoint{Server: server, Kind: "open", Fraction: fraction, loadPoint: loadPoint{Offered: offered, Achieved: offered, P50: p99 / 2, P99: p99}, CPUSPerReq: cpu}
}

// The goals are computed from the points, pass and fail alike, and a goal
// whose points are missing says so.
func TestGoals(t *testing.T) {
	pts := []expPoint{
		point("busy", 0.1, 1000, 100, 50e-6), point("hybrid", 0.1, 1100, 110, 30e-6), point("interrupt", 0.1, 900, 200, 28e-6),
		point("busy", 0.5, 5000, 100, 20e-6), point("hybrid", 0.5, 5500, 130, 20e-6),
		point("hybrid", 0, 5000, 90, 20e-6), point("nginx", 0, 5000, 120, 10e-6), point("kernel", 0, 5000, 80, 10e-6),
	}
	g := goals(pts)
	if len(g) != 3 {
		t.Fatalf("%d goals", len(g))
	}
	if g[0].verdict != "fail" || !strings.Contains(g[0].text, "1.30x") {
		t.Errorf("p99 goal: %+v; want fail at 1.30x (130 against 100 at 50%%)", g[0])
	}
	if g[1].verdict != "not known" {
		t.Errorf("CPU goal without 25%% points: %+v", g[1])
	}
	if g[2].verdict != "fail" || !strings.Contains(g[2].text, "kernel at 5000/s") || strings.Contains(g[2].text, "nginx at") {
		t.Errorf("peer goal: %+v; want a failure against kernel only", g[2])
	}
	pts = append(pts, point("hybrid", 0.25, 2500, 100, 21e-6), point("interrupt", 0.25, 2400, 150, 20e-6))
	if g := goals(pts)[1]; g.verdict != "pass" {
		t.Errorf("CPU goal at 1.07x and 1.05x: %+v", g)
	}
}

// The three files are written and read back: JSON with the fields the
// report promises, a CSV with a header and a row per point, a report with
// the goals and every point.
func TestWriteResults(t *testing.T) {
	dir := t.TempDir()
	res := expResults{Machine: "machine: test", Command: "testbed experiment", Points: []expPoint{point("hybrid", 0.1, 1000, 100, 20e-6)},
		Missing: []expMissing{{"apache", "apache2 not installed"}}}
	if err := writeResults(dir, res); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Points []map[string]any `json:"points"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"server", "file_bytes", "offered_rps", "achieved_rps", "p50_us", "p99_us", "p999_us", "errors", "cpu_s_per_req"} {
		if _, ok := back.Points[0][f]; !ok {
			t.Errorf("results.json has no %s", f)
		}
	}
	f, err := os.Open(filepath.Join(dir, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != 2 || len(rows[1]) != len(csvHeader) {
		t.Fatalf("results.csv: %d rows (%v)", len(rows), err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, want := range []string{"## Goals", "apache: apache2 not installed", "| hybrid | 10% | 1000 |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
}

// The plots are written as SVG and PNG that parse as such.
func TestPlotsParse(t *testing.T) {
	dir := t.TempDir()
	pts := []expPoint{point("hybrid", 0.1, 1000, 100, 20e-6), point("hybrid", 0.5, 5000, 150, 15e-6), point("kernel", 0.1, 900, 120, 10e-6)}
	for i := range pts {
		pts[i].Cores = 0.1 * float64(i+1)
	}
	names, err := writePlots(dir, pts)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(figures) {
		t.Fatalf("%d plots, want %d", len(names), len(figures))
	}
	for _, n := range names {
		svg, err := os.ReadFile(filepath.Join(dir, n+".svg"))
		if err != nil {
			t.Fatal(err)
		}
		if err := xml.Unmarshal(svg, new(struct {
			XMLName xml.Name `xml:"svg"`
		})); err != nil {
			t.Errorf("%s.svg: %v", n, err)
		}
		f, err := os.Open(filepath.Join(dir, n+".png"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s.png: %v", n, err)
		}
		f.Close()
	}
}

// The loops' counters are read from xhttpd's own metrics and turned into
// rates and a share over a point.
func TestLoopStats(t *testing.T) {
	text := func(sw, wk, poll, sleep float64) string {
		return fmt.Sprintf(`# TYPE xhttpd_queue_mode_switches_total counter
xhttpd_queue_mode_switches_total{queue="0"} %g
xhttpd_queue_mode_switches_total{queue="1"} 1
# TYPE xhttpd_queue_wakeups_total counter
xhttpd_queue_wakeups_total{queue="0"} %g
# TYPE xhttpd_queue_seconds_total counter
xhttpd_queue_seconds_total{queue="0",state="polling"} %g
xhttpd_queue_seconds_total{queue="0",state="sleeping"} %g
`, sw, wk, poll, sleep)
	}
	a, err := parseLoopStats(text(10, 100, 1, 9))
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseLoopStats(text(30, 600, 2.5, 9.5))
	if err != nil {
		t.Fatal(err)
	}
	d := b.delta(a, 2)
	if d.Switches != 10 || d.Wakeups != 250 || d.PollingPart != 0.75 {
		t.Errorf("delta %+v; want 10 switches/s, 250 wake-ups/s, 75%% polling", d)
	}
	if _, err := parseLoopStats("not { metrics"); err == nil {
		t.Error("garbage parsed")
	}
}
