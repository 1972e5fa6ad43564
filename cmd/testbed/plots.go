package main

import (
	"cmp"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// A figure of the report: y against x for each server's open-loop points,
// one line per server in order of offered load.
type figure struct {
	name, title, xLabel, yLabel string
	logX, logY                  bool
	x, y                        func(expPoint) float64
}

var figures = []figure{
	{"latency-p50", "p50 latency against offered load", "offered requests/s", "p50 latency, µs", true, true,
		func(p expPoint) float64 { return p.Offered }, func(p expPoint) float64 { return float64(p.P50) }},
	{"latency-p99", "p99 latency against offered load", "offered requests/s", "p99 latency, µs", true, true,
		func(p expPoint) float64 { return p.Offered }, func(p expPoint) float64 { return float64(p.P99) }},
	{"cpu-per-request", "server CPU per request against offered load", "offered requests/s", "server CPU per request, µs", true, false,
		func(p expPoint) float64 { return p.Offered }, func(p expPoint) float64 { return p.CPUSPerReq * 1e6 }},
	{"cores", "server cores used against offered load", "offered requests/s", "cores (CPU s per s)", true, false,
		func(p expPoint) float64 { return p.Offered }, func(p expPoint) float64 { return p.Cores }},
	{"tradeoff", "latency against CPU: each server through its load points", "server cores used", "p99 latency, µs", false, true,
		func(p expPoint) float64 { return p.Cores }, func(p expPoint) float64 { return float64(p.P99) }},
}

// spread is a line's points with the range of each over its runs, as
// plotter's error bars take it: distances below and above the point.
type spread struct {
	plotter.XYs
	lo, hi plotter.XYs
}

func (s spread) YError(i int) (float64, float64) {
	return s.XYs[i].Y - s.lo[i].Y, s.hi[i].Y - s.XYs[i].Y
}
func (s spread) XError(i int) (float64, float64) {
	return s.XYs[i].X - s.lo[i].X, s.hi[i].X - s.XYs[i].X
}

// writePlots draws every figure as SVG and PNG into dir and returns the
// file names, without extension, that it wrote. Each point is a median
// over its runs; whiskers show the least and greatest run.
func writePlots(dir string, pts []aggPoint) ([]string, error) {
	var servers []string
	for _, p := range pts {
		if p.Kind == "open" && !slices.Contains(servers, p.Server) {
			servers = append(servers, p.Server)
		}
	}
	if len(servers) == 0 {
		return nil, nil
	}
	var names []string
	for _, f := range figures {
		p := plot.New()
		p.Title.Text = f.title
		p.X.Label.Text = f.xLabel
		p.Y.Label.Text = f.yLabel
		if f.logX {
			p.X.Scale = plot.LogScale{}
			p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		}
		if f.logY {
			p.Y.Scale = plot.LogScale{}
			p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		}
		p.Legend.Top = true
		p.Legend.Left = true
		for i, s := range servers {
			var line spread
			whiskers := false
			for _, pt := range pts {
				x, y := f.x(pt.expPoint), f.y(pt.expPoint)
				// Log scales take no zero.
				if pt.Server != s || pt.Kind != "open" || (f.logX && x <= 0) || (f.logY && y <= 0) {
					continue
				}
				lo := plotter.XY{X: f.x(pt.Lo), Y: f.y(pt.Lo)}
				hi := plotter.XY{X: f.x(pt.Hi), Y: f.y(pt.Hi)}
				if f.logX && lo.X <= 0 {
					lo.X = x
				}
				if f.logY && lo.Y <= 0 {
					lo.Y = y
				}
				whiskers = whiskers || pt.Runs > 1
				line.XYs = append(line.XYs, plotter.XY{X: x, Y: y})
				line.lo, line.hi = append(line.lo, lo), append(line.hi, hi)
			}
			if len(line.XYs) == 0 {
				continue
			}
			// The trade-off keeps the order of offered load: a curve
			// through the points as load grows.
			if f.name != "tradeoff" {
				idx := make([]int, len(line.XYs))
				for k := range idx {
					idx[k] = k
				}
				slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(line.XYs[a].X, line.XYs[b].X) })
				var sorted spread
				for _, k := range idx {
					sorted.XYs = append(sorted.XYs, line.XYs[k])
					sorted.lo, sorted.hi = append(sorted.lo, line.lo[k]), append(sorted.hi, line.hi[k])
				}
				line = sorted
			}
			l, points, err := plotter.NewLinePoints(line.XYs)
			if err != nil {
				return names, fmt.Errorf("plot %s: %w", f.name, err)
			}
			c := plotutil.Color(i)
			l.Color, points.Color = c, c
			l.Dashes = plotutil.Dashes(i)
			points.Shape = plotutil.Shape(i)
			p.Add(l, points)
			if whiskers {
				yb, err := plotter.NewYErrorBars(line)
				if err != nil {
					return names, fmt.Errorf("plot %s: %w", f.name, err)
				}
				yb.Color = c
				p.Add(yb)
				if f.name == "tradeoff" {
					xb, err := plotter.NewXErrorBars(line)
					if err != nil {
						return names, fmt.Errorf("plot %s: %w", f.name, err)
					}
					xb.Color = c
					p.Add(xb)
				}
			}
			p.Legend.Add(s, l, points)
		}
		p.Add(plotter.NewGrid())
		p.BackgroundColor = color.White
		for _, ext := range []string{".svg", ".png"} {
			if err := p.Save(8*vg.Inch, 5*vg.Inch, filepath.Join(dir, f.name+ext)); err != nil {
				return names, fmt.Errorf("plot %s: %w", f.name, err)
			}
		}
		names = append(names, f.name)
	}
	return names, nil
}

// cdfPlots are the latency distributions of the report, or why there are
// none.
type cdfPlots struct {
	figs []shownFigure
	note string
}

// shownFigure is a figure the report shows, with its caption.
type shownFigure struct{ name, caption string }

// cdfSharedRate picks the shared rate at which the servers' distributions
// are compared: the one most servers were measured at, the higher of a
// tie; so the highest that every server sustained, when there is one.
func cdfSharedRate(aggs []aggPoint) (float64, bool) {
	return sharedRateWith(aggs, func(a aggPoint) bool { return len(a.CDF) > 0 })
}

// sharedRateWith is cdfSharedRate over the points that have what has
// asks.
func sharedRateWith(aggs []aggPoint, has func(aggPoint) bool) (float64, bool) {
	at := map[float64]int{}
	for _, a := range aggs {
		if a.Kind == "open" && a.Fraction == 0 && has(a) {
			at[a.Offered]++
		}
	}
	best, n := 0.0, 0
	for rate, k := range at {
		if k > n || (k == n && rate > best) {
			best, n = rate, k
		}
	}
	return best, n > 0
}

// cdfFraction picks the fraction of saturation nearest 50 % that has
// distributions.
func cdfFraction(aggs []aggPoint) (float64, bool) {
	return fractionWith(aggs, func(a aggPoint) bool { return len(a.CDF) > 0 })
}

// fractionWith is cdfFraction over the points that have what has asks.
func fractionWith(aggs []aggPoint, has func(aggPoint) bool) (float64, bool) {
	best, ok := 0.0, false
	for _, a := range aggs {
		if a.Kind == "open" && a.Fraction > 0 && has(a) && (!ok || math.Abs(a.Fraction-0.5) < math.Abs(best-0.5)) {
			best, ok = a.Fraction, true
		}
	}
	return best, ok
}

// writeCDFs draws each server's latency distribution at the shared rate
// cdfSharedRate picks and at the fraction of its saturation cdfFraction
// picks: the median over the runs at each of pcts, and a band from the
// least to the greatest run. Results without distributions (from before
// they were kept) get a note instead.
func writeCDFs(dir string, pcts []float64, aggs []aggPoint) (cdfPlots, error) {
	have := slices.ContainsFunc(aggs, func(a aggPoint) bool { return a.Kind == "open" && len(a.CDF) > 0 })
	if len(pcts) == 0 || !have {
		return cdfPlots{note: "No latency distributions: this results.json has none (no `cdf_us`; it predates them), so there are no CDFs."}, nil
	}
	var servers []string
	for _, a := range aggs {
		if a.Kind == "open" && !slices.Contains(servers, a.Server) {
			servers = append(servers, a.Server)
		}
	}
	var out cdfPlots
	draw := func(name, title, caption string, pick func(aggPoint) bool, label func(aggPoint) string) error {
		var lines []cdfLine
		var lacking []string
		for _, s := range servers {
			i := slices.IndexFunc(aggs, func(a aggPoint) bool {
				return a.Server == s && a.Kind == "open" && len(a.CDF) == len(pcts) && pick(a)
			})
			if i < 0 {
				lacking = append(lacking, s)
				continue
			}
			lines = append(lines, cdfLine{label: label(aggs[i]), med: aggs[i].CDF, lo: aggs[i].Lo.CDF, hi: aggs[i].Hi.CDF, runs: aggs[i].Runs})
		}
		if len(lacking) > 0 {
			caption += " Not measured there: " + strings.Join(lacking, ", ") + "."
		}
		if err := drawCDF(dir, name, title, pcts, lines); err != nil {
			return err
		}
		out.figs = append(out.figs, shownFigure{name, caption})
		return nil
	}
	const how = " x: percentile, on an axis of 1/(1-p) (log), as HdrHistogram plots them, so that the tail has room; y: latency from the intended time (log). Each curve is the median over the runs at each percentile; the band spans the least and the greatest run."
	if rate, ok := cdfSharedRate(aggs); ok {
		if err := draw("cdf-shared", fmt.Sprintf("latency distribution at %.0f requests/s", rate),
			fmt.Sprintf("At %.0f requests/s offered, the highest shared rate that the most servers were measured at.", rate)+how,
			func(a aggPoint) bool { return a.Fraction == 0 && a.Offered == rate },
			func(a aggPoint) string { return a.Server }); err != nil {
			return out, err
		}
	}
	if f, ok := cdfFraction(aggs); ok {
		if err := draw("cdf-saturation", fmt.Sprintf("latency distribution at %.0f%% of each server's saturation", f*100),
			fmt.Sprintf("At %.0f%% of each server's own saturation (its rate in the legend).", f*100)+how,
			func(a aggPoint) bool { return a.Fraction == f },
			func(a aggPoint) string { return fmt.Sprintf("%s (%.0f/s)", a.Server, a.Offered) }); err != nil {
			return out, err
		}
	}
	return out, nil
}

// cdfLine is one server's distribution: latencies at the percentiles.
type cdfLine struct {
	label       string
	med, lo, hi []int64
	runs        int
}

// oddsX places percentile p on the x axis: 1/(1-p), so that 90, 99, 99.9 %
// are a decade apart.
func oddsX(p float64) float64 { return 1 / (1 - p/100) }

// oddsTicks labels the x axis in percentiles.
var oddsTicks = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for _, p := range []float64{0, 50, 90, 99, 99.9, 99.99, 99.999} {
		if x := oddsX(p); x >= lo*0.999 && x <= hi*1.001 {
			ts = append(ts, plot.Tick{Value: x, Label: strconv.FormatFloat(p, 'f', -1, 64) + "%"})
		}
	}
	return ts
})

func drawCDF(dir, name, title string, pcts []float64, lines []cdfLine) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency, µs"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = oddsTicks
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	for i, l := range lines {
		var med, band plotter.XYs
		for k, pc := range pcts {
			if l.med[k] > 0 {
				med = append(med, plotter.XY{X: oddsX(pc), Y: float64(l.med[k])})
			}
		}
		if len(med) == 0 {
			continue
		}
		c := plotutil.Color(i)
		if l.runs > 1 {
			for k := range pcts {
				if l.lo[k] > 0 {
					band = append(band, plotter.XY{X: oddsX(pcts[k]), Y: float64(l.lo[k])})
				}
			}
			for k := len(pcts) - 1; k >= 0; k-- {
				if l.hi[k] > 0 {
					band = append(band, plotter.XY{X: oddsX(pcts[k]), Y: float64(l.hi[k])})
				}
			}
			poly, err := plotter.NewPolygon(band)
			if err != nil {
				return fmt.Errorf("plot %s: %w", name, err)
			}
			r, g, b, _ := c.RGBA()
			poly.Color = color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: 0x40}
			poly.LineStyle.Width = 0
			p.Add(poly)
		}
		line, err := plotter.NewLine(med)
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		line.Color = c
		line.Dashes = plotutil.Dashes(i)
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(l.label, line)
	}
	p.Add(plotter.NewGrid())
	p.BackgroundColor = color.White
	for _, ext := range []string{".svg", ".png"} {
		if err := p.Save(8*vg.Inch, 5*vg.Inch, filepath.Join(dir, name+ext)); err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
	}
	return nil
}

// timelinePoint picks, for the timelines of a burst run, the load at which
// each server is shown, as the CDFs pick theirs: the shared rate most
// servers reached, or failing one the fraction of saturation nearest 50 %.
func timelinePoint(aggs []aggPoint) (pick func(expPoint) bool, what string, ok bool) {
	has := func(a aggPoint) bool { return len(a.Windows) > 0 }
	if rate, ok := sharedRateWith(aggs, has); ok {
		return func(p expPoint) bool { return p.Fraction == 0 && p.Offered == rate }, fmt.Sprintf("%.0f requests/s (mean)", rate), true
	}
	if f, ok := fractionWith(aggs, has); ok {
		return func(p expPoint) bool { return p.Fraction == f }, fmt.Sprintf("%.0f%% of its saturation (mean)", f*100), true
	}
	return nil, "", false
}

// writeTimelines draws, for each server of a burst run, the first run of
// the point timelinePoint picks: offered and answered requests per second
// and p50/p99 latency per window of intended time and, for xhttpd over
// AF_XDP, its loops' share of time polling and wake-ups per second.
func writeTimelines(dir string, res expResults, aggs []aggPoint) ([]shownFigure, error) {
	if res.Burst == nil {
		return nil, nil
	}
	pick, what, ok := timelinePoint(aggs)
	if !ok {
		return nil, nil
	}
	var figs []shownFigure
	for _, s := range serverNames(res.Points) {
		var p *expPoint
		for i := range res.Points {
			q := &res.Points[i]
			if q.Server == s && q.Kind == "open" && len(q.Windows) > 0 && pick(*q) && (p == nil || q.Rep < p.Rep) {
				p = q
			}
		}
		if p == nil {
			continue
		}
		name := "timeline-" + s
		high, low := res.Burst.loadgen().Rates(p.Offered)
		title := fmt.Sprintf("%s at %.0f requests/s (mean): %.0f/s for %.0f%% of each %gs, then %.0f/s", s, p.Offered, high, res.Burst.Duty*100, res.Burst.PeriodS, low)
		if err := drawTimeline(dir, name, title, *p); err != nil {
			return figs, err
		}
		caption := fmt.Sprintf("%s at %s, run %d: per %.0f ms window of intended send times, the requests offered and answered per second and the p50 and p99 of their latency", s, what, max(p.Rep, 1), p.WindowS*1000)
		if len(p.LoopTimeline) > 0 {
			caption += fmt.Sprintf("; below, from xhttpd's /metrics every %.0f ms, its loops' share of time polling and their wake-ups per second", timelineWindow.Seconds()*1000)
		}
		figs = append(figs, shownFigure{name, caption + "."})
	}
	return figs, nil
}

// unlabelled marks ticks where plot's default ticker does, without labels:
// for the time axes of the upper panels of a timeline.
var unlabelled = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		ts[i].Label = ""
	}
	return ts
})

// drawTimeline draws one point's timeline as panels one above another,
// their time axes aligned.
func drawTimeline(dir, name, title string, pt expPoint) error {
	panel := func(ylabel string) *plot.Plot {
		p := plot.New()
		p.Y.Label.Text = ylabel
		p.X.Min = 0
		p.Legend.Top = true
		p.Legend.Left = false
		p.Add(plotter.NewGrid())
		return p
	}
	line := func(p *plot.Plot, xys plotter.XYs, label string, i int) error {
		if len(xys) == 0 {
			return nil
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i)
		l.StepStyle = plotter.MidStep // each value holds for its window
		p.Add(l)
		if label != "" {
			p.Legend.Add(label, l)
		}
		return nil
	}
	mid := func(w windowPoint) float64 { return w.T + pt.WindowS/2 }
	var offered, done, p50, p99 plotter.XYs
	for _, w := range pt.Windows {
		offered = append(offered, plotter.XY{X: mid(w), Y: float64(w.Offered) / pt.WindowS})
		done = append(done, plotter.XY{X: mid(w), Y: float64(w.Done) / pt.WindowS})
		if w.Done > 0 {
			p50 = append(p50, plotter.XY{X: mid(w), Y: float64(max(w.P50, 1))})
			p99 = append(p99, plotter.XY{X: mid(w), Y: float64(max(w.P99, 1))})
		}
	}
	load := panel("requests/s")
	load.Title.Text = title
	lat := panel("latency, µs")
	lat.Y.Scale = plot.LogScale{}
	lat.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	panels := []*plot.Plot{load, lat}
	errs := []error{line(load, offered, "offered", 0), line(load, done, "answered", 1), line(lat, p99, "p99", 0), line(lat, p50, "p50", 1)}
	if len(pt.LoopTimeline) > 0 {
		var share, wakeups plotter.XYs
		for _, l := range pt.LoopTimeline {
			share = append(share, plotter.XY{X: l.T, Y: l.PollingPart})
			wakeups = append(wakeups, plotter.XY{X: l.T, Y: l.Wakeups})
		}
		poll := panel("share of time polling")
		poll.Y.Min, poll.Y.Max = 0, 1
		wake := panel("wake-ups/s")
		wake.Y.Min = 0
		errs = append(errs, line(poll, share, "", 2), line(wake, wakeups, "", 3))
		panels = append(panels, poll, wake)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// One time axis for all: the widest range, labelled at the bottom.
	xmax := 0.0
	for _, p := range panels {
		xmax = max(xmax, p.X.Max)
	}
	rows := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		p.X.Max = xmax
		if i < len(panels)-1 {
			p.X.Tick.Marker = unlabelled
		}
		rows[i] = []*plot.Plot{p}
	}
	panels[len(panels)-1].X.Label.Text = "seconds from the first intended time"
	w, h := 8*vg.Inch, vg.Length(len(panels))*2*vg.Inch
	for _, ext := range []string{".svg", ".png"} {
		var c interface {
			vg.CanvasSizer
			io.WriterTo
		}
		if ext == ".svg" {
			c = vgsvg.New(w, h)
		} else {
			c = vgimg.PngCanvas{Canvas: vgimg.New(w, h)}
		}
		dc := draw.New(c)
		dc.SetColor(color.White)
		dc.Fill(dc.Rectangle.Path())
		tiles := draw.Tiles{Rows: len(rows), Cols: 1, PadX: vg.Millimeter, PadY: 2 * vg.Millimeter,
			PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
		canvases := plot.Align(rows, tiles, dc)
		for i := range rows {
			rows[i][0].Draw(canvases[i][0])
		}
		f, err := os.Create(filepath.Join(dir, name+ext))
		if err != nil {
			return err
		}
		_, err = c.WriteTo(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
	}
	return nil
}
