package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// writeReport writes report.md: the machine and the command, the goals of
// the experiment computed from the points, the plots, and a table of every
// point.
func writeReport(w io.Writer, res expResults, plots []string) {
	fmt.Fprintln(w, "# xhttpd latency experiment")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "```\n%s\ncommand: %s\n```\n\n", res.Machine, res.Command)
	fmt.Fprintln(w, "Open loop: requests at Poisson-distributed intended times over a pool of keep-alive connections (`testbed loadgen`, run in the client namespace); latency runs from each request's intended time, so a server's queue counts. Saturation: wrk's closed loop over the same number of connections. CPU: the server's user+system time from /proc, summed over its processes and threads. A point is marked unreliable (`!`) when the generator's own lag p99 exceeds 10% of the server's p50. The generator's cores are its own CPU over the point: where they and the server's add up to the machine's CPUs, the generator, not only the server, limits what the point achieves.")
	fmt.Fprintln(w)
	if len(res.Missing) > 0 {
		fmt.Fprintln(w, "## Not measured")
		fmt.Fprintln(w)
		for _, m := range res.Missing {
			fmt.Fprintf(w, "- %s: %s\n", m.Server, strings.ReplaceAll(m.Reason, "\n", " "))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "## Goals")
	fmt.Fprintln(w)
	for _, g := range goals(res.Points) {
		fmt.Fprintf(w, "- **%s**: %s\n", g.verdict, g.text)
	}
	fmt.Fprintln(w)
	if len(plots) > 0 {
		fmt.Fprintln(w, "## Plots")
		fmt.Fprintln(w)
		for _, p := range plots {
			fmt.Fprintf(w, "![%s](%s.svg)\n\n", p, p)
		}
	}
	fmt.Fprintln(w, "## Points")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| server | load | offered/s | achieved/s | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | errors | server CPU µs/req | cores | gen lag p99 µs | gen cores | loops: switches/s, wake-ups/s, polling |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, p := range res.Points {
		load := "shared"
		switch {
		case p.Kind == "closed":
			load = "saturation (wrk)"
		case p.Fraction > 0:
			load = fmt.Sprintf("%.0f%%", p.Fraction*100)
		}
		mark := ""
		if p.Unreliable {
			mark = " !"
		}
		if p.Kind == "closed" {
			fmt.Fprintf(w, "| %s | %s | | %.0f | %d | | %d | | | | %.1f | %.2f | | | |\n", p.Server, load, p.Achieved, p.P50, p.P99, p.CPUSPerReq*1e6, p.Cores)
			continue
		}
		loops := ""
		if p.Loops != nil {
			loops = fmt.Sprintf("%.0f, %.0f, %.0f%%", p.Loops.Switches, p.Loops.Wakeups, p.Loops.PollingPart*100)
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %.0f | %d%s | %d | %d | %d | %d | %d | %.1f | %.2f | %d | %.2f | %s |\n", p.Server, load, p.Offered, p.Achieved,
			p.P50, mark, p.P90, p.P99, p.P999, p.Max, p.Errors, p.CPUSPerReq*1e6, p.Cores, p.LagP99, p.GenCPU/max(p.ElapsedS, 1e-9), loops)
	}
}

type goal struct{ verdict, text string }

// goals computes the experiment's stated goals from the points: pass, fail,
// or not known when the points it needs are missing.
func goals(pts []expPoint) []goal {
	open := func(server string) []expPoint {
		var out []expPoint
		for _, p := range pts {
			if p.Server == server && p.Kind == "open" {
				out = append(out, p)
			}
		}
		return out
	}
	atFraction := func(server string, f float64) (expPoint, bool) {
		for _, p := range open(server) {
			if p.Fraction == f {
				return p, true
			}
		}
		return expPoint{}, false
	}
	var out []goal

	// hybrid's p99 within 1.15x of busy's at every fraction up to 70%.
	{
		var worst float64
		var at []string
		n := 0
		for _, h := range open("hybrid") {
			if h.Fraction == 0 || h.Fraction > 0.7 {
				continue
			}
			b, ok := atFraction("busy", h.Fraction)
			if !ok || b.P99 <= 0 {
				continue
			}
			n++
			r := float64(h.P99) / float64(b.P99)
			worst = max(worst, r)
			at = append(at, fmt.Sprintf("%.0f%%: %.2fx", h.Fraction*100, r))
		}
		out = append(out, verdict(n > 0, worst <= 1.15,
			fmt.Sprintf("hybrid's p99 within 1.15x of busy's at every load up to 70%% of saturation (each at its own saturation): worst %.2fx (%s)", worst, strings.Join(at, ", "))))
	}
	// hybrid's CPU per request within 1.1x of interrupt's at 10% and 25%.
	{
		var worst float64
		var at []string
		n := 0
		for _, f := range []float64{0.1, 0.25} {
			h, ok1 := atFraction("hybrid", f)
			i, ok2 := atFraction("interrupt", f)
			if !ok1 || !ok2 || i.CPUSPerReq <= 0 {
				continue
			}
			n++
			r := h.CPUSPerReq / i.CPUSPerReq
			worst = max(worst, r)
			at = append(at, fmt.Sprintf("%.0f%%: %.1f against %.1f µs, %.2fx", f*100, h.CPUSPerReq*1e6, i.CPUSPerReq*1e6, r))
		}
		out = append(out, verdict(n == 2, worst <= 1.1,
			fmt.Sprintf("hybrid's CPU per request within 1.1x of interrupt's at 10%% and 25%% load: worst %.2fx (%s)", worst, strings.Join(at, "; "))))
	}
	// xhttpd's best mode below every kernel-stack peer in p99 at every
	// shared rate both sustain.
	{
		xdp := []string{"interrupt", "busy", "hybrid"}
		var peers []string
		for _, p := range pts {
			if !slices.Contains(xdp, p.Server) && !slices.Contains(peers, p.Server) {
				peers = append(peers, p.Server)
			}
		}
		n, fails := 0, []string{}
		var notes []string
		for _, rate := range sharedRates(pts) {
			best := int64(math.MaxInt64)
			bestName := ""
			for _, m := range xdp {
				for _, p := range open(m) {
					if p.Fraction == 0 && p.Offered == rate && p.Errors == 0 && p.P99 < best {
						best, bestName = p.P99, m
					}
				}
			}
			if bestName == "" {
				continue
			}
			for _, peer := range peers {
				for _, p := range open(peer) {
					if p.Fraction != 0 || p.Offered != rate || p.Errors != 0 {
						continue
					}
					n++
					notes = append(notes, fmt.Sprintf("%.0f/s: %s %d µs against %s %d µs", rate, bestName, best, peer, p.P99))
					if best >= p.P99 {
						fails = append(fails, fmt.Sprintf("%s at %.0f/s", peer, rate))
					}
				}
			}
		}
		text := "xhttpd's best mode below every kernel-stack peer in p99 at every shared load both sustain"
		if len(fails) > 0 {
			text += "; not below " + strings.Join(fails, ", ")
		}
		out = append(out, verdict(n > 0, len(fails) == 0, text+" ("+strings.Join(notes, "; ")+")"))
	}
	return out
}

func verdict(known, pass bool, text string) goal {
	switch {
	case !known:
		return goal{"not known", text + ": the points it needs were not measured"}
	case pass:
		return goal{"pass", text}
	}
	return goal{"fail", text}
}

// sharedRates lists the shared absolute rates measured, in order.
func sharedRates(pts []expPoint) []float64 {
	var out []float64
	for _, p := range pts {
		if p.Kind == "open" && p.Fraction == 0 && !slices.Contains(out, p.Offered) {
			out = append(out, p.Offered)
		}
	}
	slices.Sort(out)
	return out
}
