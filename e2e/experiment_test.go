package e2e

import (
	"encoding/json"
	"encoding/xml"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// The experiment tool on a few short points, as `make bench-quick` runs it
// with fewer: every server named has points or a stated reason, the
// percentiles of a point never decrease from p50 to max, CPU is never
// negative, results.json has its fields, and the plots parse as SVG and
// PNG. A server whose binary is missing is reported, not fatal.
func TestExperimentQuick(t *testing.T) {
	testbedtest.RequireRoot(t)
	dir := t.TempDir()
	tb := buildT(t, "cmd/testbed")
	out := filepath.Join(dir, "out")
	servers := []string{"interrupt", "hybrid", "kernel", "nethttp"}
	cmd := exec.Command(tb, "experiment", "-xhttpd", xhttpdBin, "-nethttpd", filepath.Join(dir, "no-such-nethttpd"), "-out", out,
		"-servers", strings.Join(servers, ","), "-fractions", "0.25,0.5", "-rates", "500", "-duration", "1s", "-sat-duration", "1s", "-conns", "8")
	if b, err := cmd.CombinedOutput(); err != nil {
		// The missing nethttpd fails the flag check: nothing would run.
		if !strings.Contains(string(b), "no-such-nethttpd") {
			t.Fatalf("experiment: %v\n%s", err, b)
		}
	} else {
		t.Fatalf("experiment accepted a -nethttpd that does not exist:\n%s", b)
	}

	// A peer whose binary exists but fails to start is reported as missing.
	fake := filepath.Join(dir, "nethttpd")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho cannot start >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(tb, "experiment", "-xhttpd", xhttpdBin, "-nethttpd", fake, "-out", out,
		"-servers", strings.Join(servers, ","), "-fractions", "0.25,0.5", "-rates", "500", "-duration", "1s", "-reps", "2", "-sat-duration", "1s", "-conns", "8")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("experiment: %v\n%s", err, b)
	}

	var res struct {
		Points []struct {
			Server     string   `json:"server"`
			Kind       string   `json:"kind"`
			Rep        int      `json:"rep"`
			FileBytes  *int     `json:"file_bytes"`
			Offered    *float64 `json:"offered_rps"`
			Achieved   *float64 `json:"achieved_rps"`
			P50        int64    `json:"p50_us"`
			P90        int64    `json:"p90_us"`
			P99        int64    `json:"p99_us"`
			P999       *int64   `json:"p999_us"`
			Max        int64    `json:"max_us"`
			Errors     *int64   `json:"errors"`
			CPUSPerReq *float64 `json:"cpu_s_per_req"`
			Cores      float64  `json:"cores"`
			CDF        []int64  `json:"cdf_us"`
			Loops      *struct {
				Switches float64 `json:"mode_switches_per_s"`
				Wakeups  float64 `json:"wakeups_per_s"`
				Polling  float64 `json:"polling_share"`
			} `json:"loops"`
		} `json:"points"`
		Missing        []struct{ Server, Reason string } `json:"missing"`
		CDFPercentiles []float64                         `json:"cdf_percentiles"`
	}
	j, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(j, &res); err != nil {
		t.Fatal(err)
	}
	measured := map[string]int{}
	runs := map[string]map[int]bool{} // server and offered rate: the runs measured
	for _, p := range res.Points {
		if p.FileBytes == nil || p.Offered == nil || p.Achieved == nil || p.P999 == nil || p.Errors == nil || p.CPUSPerReq == nil {
			t.Fatalf("a point lacks a field of results.json: %s", j)
		}
		if *p.CPUSPerReq < 0 || p.Cores < 0 {
			t.Errorf("%s: negative CPU: %v s per request, %v cores", p.Server, *p.CPUSPerReq, p.Cores)
		}
		if p.Kind != "open" {
			continue
		}
		measured[p.Server]++
		k := p.Server + " " + strconv.FormatFloat(*p.Offered, 'f', -1, 64)
		if runs[k] == nil {
			runs[k] = map[int]bool{}
		}
		runs[k][p.Rep] = true
		switch {
		case (p.Server == "interrupt" || p.Server == "hybrid") && p.Loops == nil:
			t.Errorf("%s at %v/s: no figures from its queue loops", p.Server, *p.Offered)
		case p.Loops != nil && (p.Loops.Switches < 0 || p.Loops.Wakeups < 0 || p.Loops.Polling < 0 || p.Loops.Polling > 1):
			t.Errorf("%s at %v/s: loop figures out of range: %+v", p.Server, *p.Offered, *p.Loops)
		}
		if !(p.P50 <= p.P90 && p.P90 <= p.P99 && p.P99 <= *p.P999 && *p.P999 <= p.Max) {
			t.Errorf("%s at %v/s: percentiles decrease: %d %d %d %d %d", p.Server, *p.Offered, p.P50, p.P90, p.P99, *p.P999, p.Max)
		}
		if len(p.CDF) != len(res.CDFPercentiles) || len(p.CDF) == 0 || !slices.IsSorted(p.CDF) || p.CDF[len(p.CDF)-1] > p.Max {
			t.Errorf("%s at %v/s: distribution %v at %v (max %d)", p.Server, *p.Offered, p.CDF, res.CDFPercentiles, p.Max)
		}
	}
	for _, s := range servers {
		reason := ""
		for _, m := range res.Missing {
			if m.Server == s {
				reason = m.Reason
			}
		}
		switch {
		case s == "nethttp" && reason == "":
			t.Errorf("nethttp (a binary that exits at once) is not reported missing")
		case s != "nethttp" && measured[s] < 2:
			t.Errorf("%s: %d open-loop points (missing: %q)", s, measured[s], reason)
		}
	}
	for k, r := range runs {
		if !r[1] || !r[2] || len(r) != 2 {
			t.Errorf("%s/s: runs %v, want 1 and 2 (-reps 2)", k, r)
		}
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "## Goals") || !strings.Contains(string(md), "cdf-shared.svg") {
		t.Errorf("report.md has no goals or no CDF:\n%s", md)
	}
	checkPlots(t, out, string(md))
}

// checkPlots checks that the plots in out parse as SVG and PNG, one of
// each per figure, and that the report shows each.
func checkPlots(t *testing.T, out, md string) {
	t.Helper()
	svgs, _ := filepath.Glob(filepath.Join(out, "*.svg"))
	pngs, _ := filepath.Glob(filepath.Join(out, "*.png"))
	if len(svgs) == 0 || len(svgs) != len(pngs) {
		t.Fatalf("%d SVG and %d PNG plots", len(svgs), len(pngs))
	}
	for _, f := range svgs {
		b, _ := os.ReadFile(f)
		if err := xml.Unmarshal(b, new(struct {
			XMLName xml.Name `xml:"svg"`
		})); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
		if !strings.Contains(md, filepath.Base(f)) {
			t.Errorf("report.md does not show %s", filepath.Base(f))
		}
	}
	for _, f := range pngs {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(r); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
		r.Close()
	}
}

// A -close sweep in bursts against xhttpd and the kernel stack: each
// request on a new connection, nearly every connection closed by the
// server first (the generator never closes first); a timeline of every
// point, and of hybrid's loops, drawn for each server.
func TestExperimentQuickCloseBurst(t *testing.T) {
	testbedtest.RequireRoot(t)
	dir := t.TempDir()
	tb := buildT(t, "cmd/testbed")
	out := filepath.Join(dir, "out")
	cmd := exec.Command(tb, "experiment", "-xhttpd", xhttpdBin, "-out", out, "-servers", "hybrid,kernel", "-close", "-pattern", "burst", "-burst-period", "250ms",
		"-fractions", "0.25", "-rates", "", "-duration", "1s", "-reps", "1", "-sat-duration", "1s", "-conns", "8")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("experiment: %v\n%s", err, b)
	}
	var res struct {
		Close   bool   `json:"close"`
		Pattern string `json:"pattern"`
		Points  []struct {
			Server       string  `json:"server"`
			Kind         string  `json:"kind"`
			Offered      float64 `json:"offered_rps"`
			Done         int64   `json:"done"`
			Errors       int64   `json:"errors"`
			Opened       int64   `json:"new_conns"`
			ServerClosed int64   `json:"closed_by_server"`
			Reset        int64   `json:"reset_by_client"`
			ClientTW     *int    `json:"client_time_wait"`
			Windows      []struct {
				Offered int64 `json:"offered"`
			} `json:"windows"`
			LoopTimeline []struct {
				Polling float64 `json:"polling_share"`
			} `json:"loop_timeline"`
		} `json:"points"`
		Missing []struct{ Server, Reason string } `json:"missing"`
	}
	j, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(j, &res); err != nil {
		t.Fatal(err)
	}
	if !res.Close || res.Pattern != "burst" || len(res.Missing) > 0 {
		t.Errorf("close %v, pattern %q, missing %v", res.Close, res.Pattern, res.Missing)
	}
	open := 0
	for _, p := range res.Points {
		if p.Kind != "open" {
			continue
		}
		open++
		if p.Done == 0 || p.Opened < p.Done || p.ClientTW == nil {
			t.Fatalf("%s at %.0f/s: %d answers over %d connections, client TIME-WAIT %v", p.Server, p.Offered, p.Done, p.Opened, p.ClientTW)
		}
		t.Logf("%s at %.0f/s: %d answers, %d errors, %d connections, %d closed by the server first, %d reset, client TIME-WAIT %d",
			p.Server, p.Offered, p.Done, p.Errors, p.Opened, p.ServerClosed, p.Reset, *p.ClientTW)
		var offered int64
		for _, w := range p.Windows {
			offered += w.Offered
		}
		if len(p.Windows) != 10 || offered == 0 {
			t.Errorf("%s at %.0f/s: %d windows offering %d requests, want 10 for 1 s", p.Server, p.Offered, len(p.Windows), offered)
		}
		if (p.Server == "hybrid") != (len(p.LoopTimeline) >= 5) {
			t.Errorf("%s at %.0f/s: %d samples of the loops", p.Server, p.Offered, len(p.LoopTimeline))
		}
		// The server is asked to close: it does so first, nearly always.
		if p.ServerClosed < p.Done*9/10 {
			t.Errorf("%s at %.0f/s: the server closed first %d times of %d answers", p.Server, p.Offered, p.ServerClosed, p.Done)
		}
	}
	if open != 2 {
		t.Errorf("%d open-loop points, want 2 (one per server)", open)
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	for _, want := range []string{"## Connections", "## Burst timelines", "timeline-hybrid.svg", "timeline-kernel.svg"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	checkPlots(t, out, string(md))
}
