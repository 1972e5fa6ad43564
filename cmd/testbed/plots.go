package main

import (
	"cmp"
	"fmt"
	"image/color"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
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
