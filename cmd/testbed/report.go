package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/xhttpd/xhttpd/testbed/loadgen"
)

// aggPoint is a point of the report: the median of its runs (-reps), field
// by field, and the least and greatest value of each field over the runs.
type aggPoint struct {
	expPoint          // medians
	Lo, Hi   expPoint // least and greatest, field by field
	Runs     int
}

// aggregate groups the runs of each open-loop point (one server, file,
// load) and returns one aggPoint per group, in the order of the groups'
// first runs; a closed-loop point is its own group. Unreliable is decided
// again on the medians, as for a single run.
func aggregate(pts []expPoint) []aggPoint {
	type key struct {
		server            string
		file              int
		kind              string
		fraction, offered float64
	}
	var order []key
	groups := map[key][]expPoint{}
	for _, p := range pts {
		k := key{p.Server, p.FileBytes, p.Kind, p.Fraction, p.Offered}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], p)
	}
	out := make([]aggPoint, 0, len(order))
	for _, k := range order {
		g := groups[k]
		a := aggPoint{expPoint: g[0], Lo: g[0], Hi: g[0], Runs: len(g)}
		a.Rep = 0
		loops := true
		for _, p := range g {
			loops = loops && p.Loops != nil
			if a.FirstErr == "" {
				a.FirstErr = p.FirstErr
			}
		}
		if loops {
			for _, q := range []*expPoint{&a.expPoint, &a.Lo, &a.Hi} {
				q.Loops = &loopDelta{}
			}
		} else {
			a.Loops, a.Lo.Loops, a.Hi.Loops = nil, nil, nil
		}
		ints := func(p *expPoint) []*int64 {
			return []*int64{&p.Sent, &p.Done, &p.Errors, &p.P50, &p.P90, &p.P99, &p.P999, &p.Max, &p.LagP50, &p.LagP99, &p.BodyBytes, &p.Opened, &p.ServerClosed, &p.Reset}
		}
		floats := func(p *expPoint) []*float64 {
			f := []*float64{&p.Achieved, &p.GenCPU, &p.ElapsedS, &p.CPUSPerReq, &p.Cores}
			if loops {
				f = append(f, &p.Loops.Switches, &p.Loops.Wakeups, &p.Loops.PollingPart,
					&p.Loops.WaitAfterSleepUS, &p.Loops.WaitPollingUS, &p.Loops.AfterSleepPart)
			}
			return f
		}
		vals := make([]float64, len(g))
		for i := range ints(&a.expPoint) {
			for j := range g {
				vals[j] = float64(*ints(&g[j])[i])
			}
			m, lo, hi := medianSpread(vals)
			*ints(&a.expPoint)[i], *ints(&a.Lo)[i], *ints(&a.Hi)[i] = int64(math.Round(m)), int64(lo), int64(hi)
		}
		for i := range floats(&a.expPoint) {
			for j := range g {
				vals[j] = *floats(&g[j])[i]
			}
			*floats(&a.expPoint)[i], *floats(&a.Lo)[i], *floats(&a.Hi)[i] = medianSpread(vals)
		}
		a.CDF, a.Lo.CDF, a.Hi.CDF = nil, nil, nil
		if n := len(g[0].CDF); n > 0 && !slices.ContainsFunc(g, func(p expPoint) bool { return len(p.CDF) != n }) {
			a.CDF, a.Lo.CDF, a.Hi.CDF = make([]int64, n), make([]int64, n), make([]int64, n)
			for i := range n {
				for j := range g {
					vals[j] = float64(g[j].CDF[i])
				}
				m, lo, hi := medianSpread(vals)
				a.CDF[i], a.Lo.CDF[i], a.Hi.CDF[i] = int64(math.Round(m)), int64(lo), int64(hi)
			}
		}
		if a.Kind == "open" {
			a.Unreliable = float64(a.LagP99) > 0.1*float64(a.P50)
		}
		out = append(out, a)
	}
	return out
}

// medianSpread returns the median of vs (the mean of the middle two for an
// even count), its least and its greatest value. It sorts vs.
func medianSpread(vs []float64) (median, lo, hi float64) {
	if len(vs) == 0 {
		return 0, 0, 0
	}
	slices.Sort(vs)
	n := len(vs)
	median = vs[n/2]
	if n%2 == 0 {
		median = (vs[n/2-1] + vs[n/2]) / 2
	}
	return median, vs[0], vs[n-1]
}

// medians returns the median points of aggs.
func medians(aggs []aggPoint) []expPoint {
	out := make([]expPoint, len(aggs))
	for i, a := range aggs {
		out[i] = a.expPoint
	}
	return out
}

// withSpread prints a median and, over more than one run, its range.
func withSpread(a aggPoint, f func(expPoint) float64, format string) string {
	s := fmt.Sprintf(format, f(a.expPoint))
	if a.Runs > 1 {
		s += fmt.Sprintf(" ("+format+"–"+format+")", f(a.Lo), f(a.Hi))
	}
	return s
}

// writeReport writes report.md: the machine and the command, the goals of
// the experiment computed from the points, the plots, and a table of every
// point.
func writeReport(w io.Writer, res expResults, plots []string, cdfs cdfPlots, timelines []shownFigure) {
	aggs := aggregate(res.Points)
	fmt.Fprintln(w, "# xhttpd latency experiment")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "```\n%s\ncommand: %s\n```\n\n", res.Machine, res.Command)
	fmt.Fprintln(w, "Open loop: requests at Poisson-distributed intended times over a pool of keep-alive connections (`testbed loadgen`, run in the client namespace); latency runs from each request's intended time, so a server's queue counts. Saturation: wrk's closed loop over the same number of connections. CPU: the server's user+system time from /proc, summed over its processes and threads. A point is marked unreliable (`!`) when the generator's own lag p99 exceeds 10% of the server's p50. The generator's cores are its own CPU over the point: where they and the server's add up to the machine's CPUs, the generator, not only the server, limits what the point achieves.")
	fmt.Fprintln(w)
	if b := res.Burst; b != nil {
		fmt.Fprintf(w, "Bursts (`-pattern burst`): the offered load alternates, each %gs starting with %.0f%% of it at a high rate and the rest at %g times that rate, Poisson within each phase; a point's offered rate is the mean over a period (at 1,000/s: %s). Each point keeps a timeline per %.0f ms window of intended times, and for xhttpd over AF_XDP one of its loops, read from its /metrics every %.0f ms over one keep-alive connection (see Burst timelines).\n\n",
			b.PeriodS, b.Duty*100, b.Low, burstRates(*b, 1000), timelineWindow.Seconds()*1000, timelineWindow.Seconds()*1000)
	}
	if res.Close {
		fmt.Fprintln(w, "New connection per request (`-close`): each request opens its own connection and asks for `Connection: close`, the connection's set-up counting in its latency, at most `-conns` open at once (a request beyond them waits, its latency growing); wrk's saturation run asks for `Connection: close` too. The generator never closes first: it closes once the server's FIN has come, or resets the connection (SO_LINGER 0) when the FIN has not come within "+loadgen.CloseWait.String()+" of the answer, so it keeps no TIME-WAIT and does not run out of ephemeral ports by itself (see Connections).")
		fmt.Fprintln(w)
	}
	if reps := max(res.Reps, 1); reps > 1 {
		fmt.Fprintf(w, "Each open-loop point ran %d times (`-reps %d`), each run with its own Poisson schedule, the runs of a server sweeping its rates in turn. results.json and results.csv keep every run; the tables, plots and goals use the median of each figure over the runs, and the tables show their range in brackets (least–greatest), the plots as whiskers.\n\n", reps, reps)
	}
	if len(res.Missing) > 0 {
		fmt.Fprintln(w, "## Not measured")
		fmt.Fprintln(w)
		for _, m := range res.Missing {
			fmt.Fprintf(w, "- %s: %s\n", m.Server, strings.ReplaceAll(m.Reason, "\n", " "))
		}
		fmt.Fprintln(w)
	}
	writeKernelBusy(w, res)
	fmt.Fprintln(w, "## Goals")
	fmt.Fprintln(w)
	for _, g := range goals(medians(aggs)) {
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
	if res.Close {
		writeConnections(w, res.Points)
	}
	fmt.Fprintln(w, "## Latency distributions")
	fmt.Fprintln(w)
	if cdfs.note != "" {
		fmt.Fprintf(w, "%s\n\n", cdfs.note)
	}
	for _, f := range cdfs.figs {
		fmt.Fprintf(w, "%s\n\n![%s](%s.svg)\n\n", f.caption, f.name, f.name)
	}
	if len(timelines) > 0 {
		fmt.Fprintln(w, "## Burst timelines")
		fmt.Fprintln(w)
		for _, f := range timelines {
			fmt.Fprintf(w, "%s\n\n![%s](%s.svg)\n\n", f.caption, f.name, f.name)
		}
	}
	fmt.Fprintln(w, "## Points")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| server | load | runs | offered/s | achieved/s | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | errors | server CPU µs/req | cores | gen lag p99 µs | gen cores | loops: switches/s, wake-ups/s, polling; rounds after a sleep, their rx wait µs, the others' |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	p50 := func(p expPoint) float64 { return float64(p.P50) }
	p99 := func(p expPoint) float64 { return float64(p.P99) }
	cpu := func(p expPoint) float64 { return p.CPUSPerReq * 1e6 }
	for _, a := range aggs {
		p := a.expPoint
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
			fmt.Fprintf(w, "| %s | %s | | | %.0f | %d | | %d | | | | %.1f | %.2f | | | |\n", p.Server, load, p.Achieved, p.P50, p.P99, p.CPUSPerReq*1e6, p.Cores)
			continue
		}
		loops := ""
		if p.Loops != nil {
			loops = fmt.Sprintf("%.0f, %.0f, %.0f%%; %.0f%%, %.0f, %.0f", p.Loops.Switches, p.Loops.Wakeups, p.Loops.PollingPart*100,
				p.Loops.AfterSleepPart*100, p.Loops.WaitAfterSleepUS, p.Loops.WaitPollingUS)
		}
		fmt.Fprintf(w, "| %s | %s | %d | %.0f | %.0f | %s%s | %d | %s | %d | %d | %d | %s | %.2f | %d | %.2f | %s |\n", p.Server, load, a.Runs, p.Offered, p.Achieved,
			withSpread(a, p50, "%.0f"), mark, p.P90, withSpread(a, p99, "%.0f"), p.P999, p.Max, p.Errors, withSpread(a, cpu, "%.1f"), p.Cores, p.LagP99, p.GenCPU/max(p.ElapsedS, 1e-9), loops)
	}
	fmt.Fprintln(w)
	writeErrors(w, res.Points)
}

// writeKernelBusy says what kernel-busy was, and how much the kernel's
// busy polling did in its points, or why it is missing.
func writeKernelBusy(w io.Writer, res expResults) {
	var rx, done int64
	points, counted := 0, 0
	for _, p := range res.Points {
		if p.Server != kernelBusy || p.Kind != "open" {
			continue
		}
		points++
		done += p.Done
		if p.BusyPollRx != nil {
			counted++
			rx += *p.BusyPollRx
		}
	}
	missing := slices.IndexFunc(res.Missing, func(m expMissing) bool { return m.Server == kernelBusy })
	if points == 0 && missing < 0 {
		return
	}
	fmt.Fprintln(w, "## Kernel busy polling")
	fmt.Fprintln(w)
	fmt.Fprintln(w, kernelBusyWhy)
	fmt.Fprintln(w)
	switch {
	case missing >= 0 && points == 0:
		fmt.Fprintf(w, "Unavailable in this run: %s.\n\n", strings.ReplaceAll(res.Missing[missing].Reason, "\n", " "))
	case counted > 0 && rx == 0:
		fmt.Fprintf(w, "Busy polling took no packet in %s (%d answers): the kernel did not busy-poll the veth, and kernel-busy's points are the kernel stack's with the settings above.\n\n", plural(counted, "point"), done)
	case counted > 0:
		fmt.Fprintf(w, "Busy polling took %d packets in %s (%d answers, so about %.1f a request).\n\n", rx, plural(counted, "point"), done, float64(rx)/float64(max(done, 1)))
	}
}

// plural says n things.
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// writeConnections sums up, per server, how the connections of a -close
// run ended: who closed first, and the TIME-WAIT sockets left.
func writeConnections(w io.Writer, pts []expPoint) {
	fmt.Fprintln(w, "## Connections")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Over every run of every point: the connections the generator opened, those the server closed first (the generator closed after its FIN: the TIME-WAIT is the server's), those the generator reset (no FIN within the wait, or an error), and the most TIME-WAIT sockets on port 80 seen after a point, in the client's namespace (the generator's, and those wrk's saturation run left within the last minute) and, for servers on the kernel's sockets, in the server's (xhttpd's netstack keeps its own, not listed by the kernel).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| server | connections | closed by the server first | reset by the generator | client TIME-WAIT, most | server TIME-WAIT, most |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: |")
	for _, s := range serverNames(pts) {
		var opened, byServer, reset int64
		client, server := "", ""
		most := func(cur string, n *int) string {
			if n == nil {
				return cur
			}
			if c, err := strconv.Atoi(cur); err == nil && c >= *n {
				return cur
			}
			return strconv.Itoa(*n)
		}
		for _, p := range pts {
			if p.Server != s || p.Kind != "open" {
				continue
			}
			opened, byServer, reset = opened+p.Opened, byServer+p.ServerClosed, reset+p.Reset
			client, server = most(client, p.ClientTimeWait), most(server, p.ServerTimeWait)
		}
		share := func(n int64) string {
			if opened == 0 {
				return ""
			}
			return fmt.Sprintf("%d (%.1f%%)", n, 100*float64(n)/float64(opened))
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s |\n", s, opened, share(byServer), share(reset), client, server)
	}
	fmt.Fprintln(w)
}

// writeErrors lists, per server and load, the errors of its runs by
// reason.
func writeErrors(w io.Writer, pts []expPoint) {
	type key struct {
		server  string
		offered float64
	}
	var order []key
	reasons := map[key]map[string]int64{}
	for _, p := range pts {
		if p.Kind != "open" || p.Errors == 0 {
			continue
		}
		k := key{p.Server, p.Offered}
		if reasons[k] == nil {
			order = append(order, k)
			reasons[k] = map[string]int64{}
		}
		if len(p.Reasons) == 0 { // results from before the reasons were counted
			reasons[k][p.FirstErr+" (the first of them)"] += p.Errors
		}
		for r, n := range p.Reasons {
			reasons[k][r] += n
		}
	}
	if len(order) == 0 {
		return
	}
	fmt.Fprintln(w, "## Errors")
	fmt.Fprintln(w)
	for _, k := range order {
		rs := slices.Sorted(maps.Keys(reasons[k]))
		var parts []string
		for _, r := range rs {
			parts = append(parts, fmt.Sprintf("%s: %d", r, reasons[k][r]))
		}
		fmt.Fprintf(w, "- %s at %.0f/s, all runs: %s\n", k.server, k.offered, strings.Join(parts, "; "))
	}
	fmt.Fprintln(w)
}

// burstRates says what a burst pattern offers at a mean rate.
func burstRates(b burstSpec, mean float64) string {
	high, low := b.loadgen().Rates(mean)
	return fmt.Sprintf("%.0f/s for %.0f ms, then %.0f/s for %.0f ms", high, b.Duty*b.PeriodS*1000, low, (1-b.Duty)*b.PeriodS*1000)
}

// serverNames lists the servers with open-loop points, in order.
func serverNames(pts []expPoint) []string {
	var out []string
	for _, p := range pts {
		if p.Kind == "open" && !slices.Contains(out, p.Server) {
			out = append(out, p.Server)
		}
	}
	return out
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
		var peers []string
		for _, p := range pts {
			if !slices.Contains(xdpServers, p.Server) && !slices.Contains(peers, p.Server) {
				peers = append(peers, p.Server)
			}
		}
		n, fails := 0, []string{}
		var notes []string
		for _, rate := range sharedRates(pts) {
			best := int64(math.MaxInt64)
			bestName := ""
			for _, m := range xdpServers {
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
