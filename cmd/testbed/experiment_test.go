package main

import (
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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
	for _, want := range []string{"## Goals", "apache: apache2 not installed", "| hybrid | 10% | 1 | 1000 |"} {
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
	// A second run of each point: whiskers on every figure.
	for _, p := range slices.Clone(pts) {
		p.Rep, p.P99, p.Cores = 2, p.P99*2, p.Cores*1.5
		pts = append(pts, p)
	}
	names, err := writePlots(dir, aggregate(pts))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(figures) {
		t.Fatalf("%d plots, want %d", len(names), len(figures))
	}
	for _, n := range names {
		checkPlot(t, dir, n)
	}
}

// checkPlot checks that plot name in dir parses as SVG and as PNG, and
// returns the PNG's image (nil if it does not parse).
func checkPlot(t *testing.T, dir, name string) image.Image {
	t.Helper()
	svg, err := os.ReadFile(filepath.Join(dir, name+".svg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(svg, new(struct {
		XMLName xml.Name `xml:"svg"`
	})); err != nil {
		t.Errorf("%s.svg: %v", name, err)
	}
	f, err := os.Open(filepath.Join(dir, name+".png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Errorf("%s.png: %v", name, err)
		return nil
	}
	return img
}

// The loops' counters are read from xhttpd's own metrics and turned into
// rates and a share over a point.
func TestLoopStats(t *testing.T) {
	text := func(sw, wk, poll, sleep, sleeps, sleepSum, polls, pollSum float64) string {
		return fmt.Sprintf(`# TYPE xhttpd_queue_mode_switches_total counter
xhttpd_queue_mode_switches_total{queue="0"} %g
xhttpd_queue_mode_switches_total{queue="1"} 1
# TYPE xhttpd_queue_wakeups_total counter
xhttpd_queue_wakeups_total{queue="0"} %g
# TYPE xhttpd_queue_seconds_total counter
xhttpd_queue_seconds_total{queue="0",state="polling"} %g
xhttpd_queue_seconds_total{queue="0",state="sleeping"} %g
# TYPE xhttpd_queue_rx_wait_seconds histogram
xhttpd_queue_rx_wait_seconds_bucket{after="sleep",queue="0",le="+Inf"} %g
xhttpd_queue_rx_wait_seconds_sum{after="sleep",queue="0"} %g
xhttpd_queue_rx_wait_seconds_count{after="sleep",queue="0"} %g
xhttpd_queue_rx_wait_seconds_bucket{after="poll",queue="0",le="+Inf"} %g
xhttpd_queue_rx_wait_seconds_sum{after="poll",queue="0"} %g
xhttpd_queue_rx_wait_seconds_count{after="poll",queue="0"} %g
xhttpd_queue_rx_wait_seconds_bucket{after="poll",queue="1",le="+Inf"} 5
xhttpd_queue_rx_wait_seconds_sum{after="poll",queue="1"} 0.001
xhttpd_queue_rx_wait_seconds_count{after="poll",queue="1"} 5
`, sw, wk, poll, sleep, sleeps, sleepSum, sleeps, polls, pollSum, polls)
	}
	a, err := parseLoopStats(text(10, 100, 1, 9, 10, 0.001, 100, 0.001))
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseLoopStats(text(30, 600, 2.5, 9.5, 30, 0.003, 400, 0.004))
	if err != nil {
		t.Fatal(err)
	}
	d := b.delta(a, 2)
	if d.Switches != 10 || d.Wakeups != 250 || d.PollingPart != 0.75 {
		t.Errorf("delta %+v; want 10 switches/s, 250 wake-ups/s, 75%% polling", d)
	}
	// 20 rounds after a sleep, 2 ms of waits; 300 polled, 3 ms.
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6 }
	if !near(d.WaitAfterSleepUS, 100) || !near(d.WaitPollingUS, 10) || !near(d.AfterSleepPart, 20.0/320) {
		t.Errorf("delta %+v; want waits of 100 us after a sleep and 10 us polling, 1/16 of rounds after a sleep", d)
	}
	if _, err := parseLoopStats("not { metrics"); err == nil {
		t.Error("garbage parsed")
	}
}

// The runs of a point are summed up field by field: the median (the mean
// of the middle two for an even count), the least and the greatest; the
// closed-loop point and each other load stay points of their own, in the
// order of their first runs, and unreliable is decided on the medians.
func TestAggregate(t *testing.T) {
	run := func(rep int, offered float64, p50, p99 int64, cpu float64, lag int64, loops *loopDelta) expPoint {
		p := point("hybrid", 0.1, offered, p99, cpu)
		p.Rep, p.P50, p.LagP99, p.Loops = rep, p50, lag, loops
		return p
	}
	sat := expPoint{Server: "hybrid", Kind: "closed", Fraction: 1, loadPoint: loadPoint{Achieved: 20000, P50: 500, P99: 900}}
	pts := []expPoint{sat,
		run(1, 1000, 100, 400, 30e-6, 50, &loopDelta{Wakeups: 100}),
		run(1, 2000, 100, 500, 20e-6, 5, nil),
		run(2, 1000, 120, 300, 10e-6, 5, &loopDelta{Wakeups: 300}),
		run(2, 2000, 100, 700, 20e-6, 5, nil),
		run(3, 1000, 110, 900, 20e-6, 5, &loopDelta{Wakeups: 200}),
	}
	aggs := aggregate(pts)
	if len(aggs) != 3 || aggs[0].Kind != "closed" || aggs[1].Offered != 1000 || aggs[2].Offered != 2000 {
		t.Fatalf("aggregate: %+v", aggs)
	}
	a := aggs[1]
	if a.Runs != 3 || a.P50 != 110 || a.P99 != 400 || a.Lo.P99 != 300 || a.Hi.P99 != 900 {
		t.Errorf("three runs: %d runs, p50 %d, p99 %d (%d-%d); want 3, 110, 400 (300-900)", a.Runs, a.P50, a.P99, a.Lo.P99, a.Hi.P99)
	}
	if a.CPUSPerReq != 20e-6 || a.Lo.CPUSPerReq != 10e-6 || a.Hi.CPUSPerReq != 30e-6 {
		t.Errorf("CPU per request %g (%g-%g)", a.CPUSPerReq, a.Lo.CPUSPerReq, a.Hi.CPUSPerReq)
	}
	if a.Loops == nil || a.Loops.Wakeups != 200 || a.Lo.Loops.Wakeups != 100 || a.Hi.Loops.Wakeups != 300 {
		t.Errorf("loops: %+v", a.Loops)
	}
	if a.LagP99 != 5 || a.Unreliable {
		t.Errorf("lag p99 %d, unreliable %v: one lagging run of three does not make the median unreliable", a.LagP99, a.Unreliable)
	}
	if b := aggs[2]; b.Runs != 2 || b.P99 != 600 || b.Loops != nil {
		t.Errorf("two runs: %d runs, p99 %d, loops %v; want 2, 600 (the mean of the middle two), none", b.Runs, b.P99, b.Loops)
	}
	if c := aggs[0]; c.Runs != 1 || c.P99 != 900 || c.Lo.P99 != 900 {
		t.Errorf("saturation: %+v", c)
	}
	// The input is left as it was: results.json keeps every run.
	if pts[1].P99 != 400 || pts[5].P99 != 900 {
		t.Error("aggregate changed its input")
	}
}

// With repetitions, the report's goals come from the medians (one outlying
// run does not decide them), its table shows each point once with the
// range of its runs, and the CSV keeps every run.
func TestReportOnMedians(t *testing.T) {
	var pts []expPoint
	for rep, busy := range []int64{100, 100, 100} {
		hybrid := []int64{110, 400, 105}[rep] // one run of three far off
		b, h := point("busy", 0.1, 1000, busy, 20e-6), point("hybrid", 0.1, 1000, hybrid, 20e-6)
		b.Rep, h.Rep = rep+1, rep+1
		pts = append(pts, b, h)
	}
	dir := t.TempDir()
	if err := writeResults(dir, expResults{Reps: 3, Points: pts}); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, want := range []string{"**pass**: hybrid's p99 within 1.15x of busy's", "worst 1.10x", "| hybrid | 10% | 3 | 1000 | 1000 |", "| 110 (105–400) |", "ran 3 times"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	f, _ := os.Open(filepath.Join(dir, "results.csv"))
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != 1+len(pts) {
		t.Errorf("results.csv: %d rows for %d runs (%v)", len(rows), len(pts), err)
	}
}

// Each run of a point has its own schedule; the first keeps the seed that
// runs before -reps used.
func TestPointSeed(t *testing.T) {
	if pointSeed(2000, 1) != 2000 {
		t.Errorf("first run's seed %d, want 2000", pointSeed(2000, 1))
	}
	seen := map[uint64]bool{}
	for _, rate := range []float64{1000, 2000, 1000003} {
		for rep := 1; rep <= 3; rep++ {
			s := pointSeed(rate, rep)
			if seen[s] {
				t.Errorf("seed %d twice (rate %v, run %d)", s, rate, rep)
			}
			seen[s] = true
		}
	}
}

// cdfPoint is a point whose latency distribution rises from base at 0 % by
// a tenth of base per step of the percentiles.
func cdfPoint(server string, fraction, offered float64, rep int, base int64) expPoint {
	p := point(server, fraction, offered, base*2, 20e-6)
	p.Rep = rep
	for i := range cdfPercentiles {
		p.CDF = append(p.CDF, base+int64(i)*base/10)
	}
	return p
}

// The distributions are drawn at the shared rate most servers reached and
// at the fraction nearest half of saturation, each server's runs as a
// median and a band; the report shows both and names a server missing
// from one. Results from before the distributions re-render with a note
// in their place.
func TestCDFs(t *testing.T) {
	var pts []expPoint
	for rep := 1; rep <= 2; rep++ {
		pts = append(pts,
			cdfPoint("hybrid", 0, 1000, rep, 100*int64(rep)), cdfPoint("hybrid", 0, 5000, rep, 200), cdfPoint("hybrid", 0.5, 8000, rep, 300),
			cdfPoint("kernel", 0, 1000, rep, 120), cdfPoint("kernel", 0, 5000, rep, 250), cdfPoint("kernel", 0.25, 3000, rep, 130),
			cdfPoint("nginx", 0, 1000, rep, 90), cdfPoint("nginx", 0.5, 6000, rep, 150))
	}
	aggs := aggregate(pts)
	if rate, ok := cdfSharedRate(aggs); !ok || rate != 1000 {
		t.Errorf("shared rate %v (%v): want 1000, the one all three reached", rate, ok)
	}
	if f, ok := cdfFraction(aggs); !ok || f != 0.5 {
		t.Errorf("fraction %v (%v), want 0.5", f, ok)
	}
	h := aggs[slices.IndexFunc(aggs, func(a aggPoint) bool { return a.Server == "hybrid" && a.Offered == 1000 })]
	if h.CDF[0] != 150 || h.Lo.CDF[0] != 100 || h.Hi.CDF[0] != 200 {
		t.Errorf("hybrid at 0 %%: %d (%d-%d), want 150 (100-200)", h.CDF[0], h.Lo.CDF[0], h.Hi.CDF[0])
	}
	if &h.CDF[0] == &pts[0].CDF[0] {
		t.Error("the median distribution shares the first run's array")
	}

	dir := t.TempDir()
	if err := writeResults(dir, expResults{Reps: 2, CDFPercentiles: cdfPercentiles, Points: pts}); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, want := range []string{"## Latency distributions", "![cdf-shared](cdf-shared.svg)", "![cdf-saturation](cdf-saturation.svg)", "At 1000 requests/s", "At 50% of each server's own saturation", "Not measured there: kernel."} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	for _, n := range []string{"cdf-shared", "cdf-saturation"} {
		checkPlot(t, dir, n)
	}

	// An old results.json: no cdf_us, no cdf_percentiles.
	old := t.TempDir()
	for i := range pts {
		pts[i].CDF = nil
	}
	b, _ := json.Marshal(expResults{Points: pts})
	os.WriteFile(filepath.Join(old, "results.json"), b, 0o644)
	if err := reportCmd([]string{"-out", old}); err != nil {
		t.Fatal(err)
	}
	md, _ = os.ReadFile(filepath.Join(old, "report.md"))
	if !strings.Contains(string(md), "No latency distributions") {
		t.Errorf("report.md of old results does not say why there are no CDFs:\n%s", md)
	}
	if _, err := os.Stat(filepath.Join(old, "cdf-shared.svg")); err == nil {
		t.Error("a CDF drawn from results without distributions")
	}
}

// A -close run's report says how connections were made and ended, per
// server over all its runs, and the errors of any point by reason.
func TestCloseReport(t *testing.T) {
	tw := func(n int) *int { return &n }
	k1, k2, h := point("kernel", 0, 1000, 300, 30e-6), point("kernel", 0, 2000, 400, 30e-6), point("hybrid", 0, 1000, 350, 30e-6)
	k1.Opened, k1.ServerClosed, k1.Reset, k1.ClientTimeWait, k1.ServerTimeWait = 100, 95, 5, tw(3), tw(900)
	k2.Opened, k2.ServerClosed, k2.Reset, k2.ClientTimeWait, k2.ServerTimeWait = 100, 100, 0, tw(12), tw(1500)
	k2.Errors, k2.Reasons = 3, map[string]int64{"connect: connection refused": 2, "no answer within 2s": 1}
	h.Opened, h.ServerClosed, h.ClientTimeWait = 50, 50, tw(0)
	h.Errors, h.FirstErr = 1, "connect: no connection within 2s" // as before reasons were counted
	dir := t.TempDir()
	if err := writeResults(dir, expResults{Close: true, Points: []expPoint{k1, k2, h}}); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, want := range []string{
		"New connection per request (`-close`)",
		"## Connections",
		"| kernel | 200 | 195 (97.5%) | 5 (2.5%) | 12 | 1500 |",
		"| hybrid | 50 | 50 (100.0%) | 0 (0.0%) | 0 |  |",
		"- kernel at 2000/s, all runs: connect: connection refused: 2; no answer within 2s: 1",
		"- hybrid at 1000/s, all runs: connect: no connection within 2s (the first of them): 1",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	f, _ := os.Open(filepath.Join(dir, "results.csv"))
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := slices.Index(rows[0], "server_time_wait")
	if col < 0 || rows[2][col] != "1500" || rows[3][col] != "" {
		t.Errorf("results.csv's server_time_wait: %v", rows)
	}
	// A keep-alive run's report has neither.
	dir = t.TempDir()
	writeResults(dir, expResults{Points: []expPoint{point("kernel", 0, 1000, 300, 30e-6)}})
	md, _ = os.ReadFile(filepath.Join(dir, "report.md"))
	if strings.Contains(string(md), "## Connections") || strings.Contains(string(md), "## Errors") {
		t.Errorf("a keep-alive run without errors reports connections or errors:\n%s", md)
	}
}

// Readings of the loops' counters become what happened between them,
// timed from the generator's start at each interval's middle.
func TestLoopTimeline(t *testing.T) {
	const s = int64(time.Second)
	scrapes := []scrape{
		{10 * s, loopStats{switches: 0, wakeups: 0, polling: 1, sleeping: 1}},
		{10*s + s/10, loopStats{switches: 2, wakeups: 10, polling: 1.025, sleeping: 1.075}},
		{10*s + s/5, loopStats{switches: 2, wakeups: 10, polling: 1.125, sleeping: 1.075}},
	}
	got := loopTimeline(scrapes, 10*s)
	want := []loopSample{{T: 0.05, PollingPart: 0.25, Wakeups: 100, Switches: 20}, {T: 0.15, PollingPart: 1}}
	if len(got) != len(want) {
		t.Fatalf("%+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if math.Abs(g.T-w.T) > 1e-9 || math.Abs(g.PollingPart-w.PollingPart) > 1e-9 || math.Abs(g.Wakeups-w.Wakeups) > 1e-6 || math.Abs(g.Switches-w.Switches) > 1e-6 {
			t.Errorf("interval %d: %+v, want %+v", i, g, w)
		}
	}
}

// A burst run's report describes the pattern and shows, per server, the
// timeline of its first run at the chosen load: xhttpd's with its loops,
// a peer's without; the figures parse.
func TestTimelines(t *testing.T) {
	burst := &burstSpec{PeriodS: 0.5, Duty: 0.2, Low: 0.1}
	withTimeline := func(p expPoint, loops bool) expPoint {
		p.WindowS = 0.1
		for i := range 10 {
			on := i%5 == 0
			w := windowPoint{T: float64(i) / 10, Offered: 36, Done: 36, P50: 100, P99: 200, Max: 300}
			if on {
				w.Offered, w.Done, w.P99 = 357, 357, 900
			}
			p.Windows = append(p.Windows, w)
			if loops {
				p.LoopTimeline = append(p.LoopTimeline, loopSample{T: float64(i)/10 + 0.05, PollingPart: map[bool]float64{true: 0.9, false: 0.1}[on], Wakeups: 300})
			}
		}
		return p
	}
	h1, h2 := withTimeline(point("hybrid", 0, 1000, 500, 20e-6), true), withTimeline(point("hybrid", 0, 1000, 500, 20e-6), true)
	h1.Rep, h2.Rep = 1, 2
	h2.Windows[0].P99 = 12345 // the second run: not the one shown
	k := withTimeline(point("kernel", 0, 1000, 400, 20e-6), false)
	dir := t.TempDir()
	if err := writeResults(dir, expResults{Pattern: "burst", Burst: burst, Reps: 2, Points: []expPoint{h2, h1, k}}); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, want := range []string{
		"Bursts (`-pattern burst`)", "at 1,000/s: 3571/s for 100 ms, then 357/s for 400 ms",
		"## Burst timelines", "hybrid at 1000 requests/s (mean), run 1:", "loops' share of time polling", "![timeline-hybrid](timeline-hybrid.svg)", "![timeline-kernel](timeline-kernel.svg)",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	for _, n := range []string{"timeline-hybrid", "timeline-kernel"} {
		if img := checkPlot(t, dir, n); img != nil && n == "timeline-hybrid" && img.Bounds().Dy() <= 2*img.Bounds().Dx()/3 {
			t.Errorf("%s.png is %v: want four panels, one above another", n, img.Bounds())
		}
	}
	// A steady run has none.
	dir = t.TempDir()
	writeResults(dir, expResults{Points: []expPoint{k}})
	md, _ = os.ReadFile(filepath.Join(dir, "report.md"))
	if strings.Contains(string(md), "Burst timelines") {
		t.Error("a steady run's report has burst timelines")
	}
}

// make bench's runs, as the Makefile has them, fit in the 15
// minutes by the progress lines' own estimate (every shared rate taken as
// sustained), with a seventh to spare for what it does not count; make
// bench-quick's in 3.
func TestMakeBenchTime(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	estimate := func(target string) (total time.Duration) {
		var lines []string
		in := false
		for _, l := range strings.Split(strings.ReplaceAll(string(mk), "\\\n", " "), "\n") {
			switch {
			case strings.HasPrefix(l, target+":"):
				in = true
			case in && strings.HasPrefix(l, "\t"):
				if strings.Contains(l, "experiment") || strings.Contains(l, "$(BENCH)") {
					lines = append(lines, l)
				}
			case in:
				in = false
			}
		}
		if len(lines) == 0 {
			t.Fatalf("no experiment in make %s", target)
		}
		for _, l := range lines {
			for _, v := range strings.Split(string(mk), "\n") {
				// Lists such as BENCH_SERVERS; not OUT, whose value is a command.
				if name, val, ok := strings.Cut(v, ":="); ok && !strings.ContainsAny(name, "\t$") && !strings.ContainsAny(strings.TrimSpace(val), " $") {
					l = strings.ReplaceAll(l, "$("+strings.TrimSpace(name)+")", strings.TrimSpace(val))
				}
			}
			f := strings.Fields(l)
			i := slices.IndexFunc(f, func(s string) bool { return strings.HasPrefix(s, "-") })
			fs := flag.NewFlagSet(target, flag.ContinueOnError)
			servers := fs.String("servers", "interrupt,busy,hybrid,kernel,nginx,apache", "")
			fractions := fs.String("fractions", defaultFractions, "")
			rates := fs.String("rates", defaultShared, "")
			duration := fs.Duration("duration", 5*time.Second, "")
			reps := fs.Int("reps", 3, "")
			sat := fs.Duration("sat-duration", 5*time.Second, "")
			for _, s := range []string{"xhttpd", "nethttpd", "out", "file", "pattern", "burst-period"} {
				fs.String(s, "", "")
			}
			fs.Bool("close", false, "")
			if err := fs.Parse(f[i:]); err != nil {
				t.Fatalf("make %s: %v in %q", target, err, l)
			}
			n := len(strings.Split(*servers, ","))
			points := len(strings.Split(*fractions, ",")) + len(strings.Split(*rates, ","))
			total += time.Duration(n) * serverTime(points, *reps, *duration, *sat)
		}
		return total
	}
	if d := estimate("bench"); d*8/7 > 15*time.Minute {
		t.Errorf("make bench: about %v by the estimate, over 15 minutes with a seventh more", d)
	} else {
		t.Logf("make bench: about %v", d)
	}
	if d := estimate("bench-quick"); d*8/7 > 3*time.Minute {
		t.Errorf("make bench-quick: about %v", d)
	} else {
		t.Logf("make bench-quick: about %v", d)
	}
}
