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

// writePlots draws every figure as SVG and PNG into dir and returns the
// file names, without extension, that it wrote.
func writePlots(dir string, pts []expPoint) ([]string, error) {
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
			var xys plotter.XYs
			for _, pt := range pts {
				x, y := f.x(pt), f.y(pt)
				// Log scales take no zero.
				if pt.Server != s || pt.Kind != "open" || (f.logX && x <= 0) || (f.logY && y <= 0) {
					continue
				}
				xys = append(xys, plotter.XY{X: x, Y: y})
			}
			if len(xys) == 0 {
				continue
			}
			// The trade-off keeps the order of offered load: a curve
			// through the points as load grows.
			if f.name != "tradeoff" {
				slices.SortFunc(xys, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
			}
			line, points, err := plotter.NewLinePoints(xys)
			if err != nil {
				return names, fmt.Errorf("plot %s: %w", f.name, err)
			}
			c := plotutil.Color(i)
			line.Color, points.Color = c, c
			line.Dashes = plotutil.Dashes(i)
			points.Shape = plotutil.Shape(i)
			p.Add(line, points)
			p.Legend.Add(s, line, points)
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
