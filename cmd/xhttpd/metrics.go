package main

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/xhttpd/xhttpd/httpd"
	"github.com/xhttpd/xhttpd/irq"
	"github.com/xhttpd/xhttpd/nic"
	"github.com/xhttpd/xhttpd/xdpnet"
)

// metrics is what -admin's /metrics serves, from one registry: xhttpd's
// own collector (added by register once the server and the data path
// exist), the request-duration histogram that httpd feeds through
// Config.Observe, the build info, and Go's runtime and process collectors
// (process_cpu_seconds_total: the CPU a request costs is this project's
// figure).
type metrics struct {
	reg      *prometheus.Registry
	duration *prometheus.HistogramVec
	// byOutcome holds each outcome's histogram, looked up once: observe
	// then costs no label lookup and no allocation.
	byOutcome [httpd.NumOutcomes]prometheus.Observer
}

// durationBuckets resolve microseconds: 10 us to 10 s in steps of 1, 2, 5.
var durationBuckets = []float64{
	10e-6, 20e-6, 50e-6, 100e-6, 200e-6, 500e-6,
	1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3, 100e-3, 200e-3, 500e-3,
	1, 2, 5, 10,
}

func newMetrics(b buildInfo) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "xhttpd_http_request_duration_seconds",
			Help:    "Time from a request's first byte until its response was written, by outcome: cached, disk (read for the request), proxied (the upstream's answer), error (this server's own 4xx and 5xx, 503 over -max-conns included).",
			Buckets: durationBuckets,
		}, []string{"outcome"}),
	}
	for o := range httpd.NumOutcomes {
		m.byOutcome[o] = m.duration.WithLabelValues(o.String())
	}
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "xhttpd_build_info",
		Help: "The build (always 1): xhttpd's version, the VCS revision and the Go version.",
	}, []string{"version", "revision", "goversion"})
	info.WithLabelValues(b.version, b.revision, b.goVersion).Set(1)
	m.reg.MustRegister(m.duration, info, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe is httpd's Config.Observe.
func (m *metrics) observe(o httpd.Outcome, _ int, d time.Duration) {
	if o < httpd.NumOutcomes {
		m.byOutcome[o].Observe(d.Seconds())
	}
}

// register adds xhttpd's own collector.
func (m *metrics) register(c prometheus.Collector) error { return m.reg.Register(c) }

// collector turns the counters the data path and the HTTP server keep
// anyway into Prometheus metrics when scraped: nothing on the hot path
// knows about Prometheus.
type collector struct {
	path *xdpnet.Path // nil on the kernel stack
	srv  *httpd.Server
}

func newCollector(path *xdpnet.Path, srv *httpd.Server) *collector {
	return &collector{path: path, srv: srv}
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("xhttpd_"+name, help, labels, nil)
}

var (
	queueMode      = desc("queue_mode", "The queue loop's waiting mode (1 for the mode in use).", "queue", "mode")
	queuePolling   = desc("queue_polling", "1 while the queue's loop polls, 0 while it sleeps.", "queue")
	queueSwitches  = desc("queue_mode_switches_total", "Changes between polling and sleeping.", "queue")
	queueSeconds   = desc("queue_seconds_total", "Time the queue's loop spent polling and sleeping.", "queue", "state")
	queueWakeups   = desc("queue_wakeups_total", "Returns from poll(2).", "queue")
	queueEmpty     = desc("queue_empty_polls_total", "Rounds that found no frame.", "queue")
	queueKicks     = desc("queue_fill_kicks_total", "need_wakeup syscalls made for the fill ring.", "queue")
	queueSpell     = desc("queue_idle_spell_seconds", "How long the loop now spins without work before it sleeps (hybrid).", "queue")
	queueRounds    = desc("queue_round_frames", "Frames taken per round that found work.", "queue")
	queueRxWait    = desc("queue_rx_wait_seconds", "How long the first frame of each round with work waited in the rx ring, from the XDP program's stamp to the loop's pickup, by what came before the round: a sleep (the wake-up's cost to the frame) or polling.", "queue", "after")
	queueRx        = desc("queue_rx_frames_total", "Frames received.", "queue")
	queueTx        = desc("queue_tx_frames_total", "Frames placed in the tx ring.", "queue")
	queueTxKicks   = desc("queue_tx_kicks_total", "sendto(2) calls that had the kernel send the tx ring, by who made them: the writer of the frames, or the queue's tx thread (-tx-kicks).", "queue", "by")
	queueTxSleeps  = desc("queue_tx_thread_sleeps_total", "Times the queue's tx thread went to sleep with nothing to kick; each cost a wake-up.", "queue")
	queueTxGSO     = desc("queue_tx_gso_segments_total", "GSO segments the queue's tx thread sent for the netstack, by outcome: sent; lost, refused by the kernel (TCP sends them again); out_of_order, sent before frames placed ahead of them had left or after frames placed behind them (also counted as sent or lost).", "queue", "outcome")
	queueTxFull    = desc("queue_tx_ring_full_frames_total", "Frames not sent for want of a tx slot or frame.", "queue")
	xskRxDropped   = desc("xsk_rx_dropped_total", "Kernel: frames dropped for want of a buffer (an empty fill ring among them) or too big (XDP_STATISTICS rx_dropped); with xsk_rx_ring_full_total, every frame the socket dropped.", "queue")
	xskRxFull      = desc("xsk_rx_ring_full_total", "Kernel: frames dropped because the rx ring was full.", "queue")
	xskFillEmpty   = desc("xsk_fill_ring_empty_total", "Kernel: times the fill ring was found empty; each frame so dropped is in xsk_rx_dropped_total too.", "queue")
	xskTxEmpty     = desc("xsk_tx_ring_empty_total", "Kernel: times the tx ring was found empty.", "queue")
	xskInvalid     = desc("xsk_invalid_descs_total", "Kernel: invalid descriptors.", "queue", "ring")
	xdpFrames      = desc("xdp_frames_total", "The steering program's verdicts.", "verdict")
	linkGSO        = desc("link_tx_gso_segments_total", "TCP segments larger than a frame for the GSO socket (-gso): sent whole, or refused and cut into frames.", "result")
	linkDrops      = desc("link_dropped_frames_total", "Frames the netstack's link endpoint dropped.", "reason")
	linkACKs       = desc("link_rx_acks_coalesced_total", "Bare ACKs not handed to the netstack: a later ACK of the same connection in the same batch acknowledged more.")
	wakeCost       = desc("wake_cost_seconds", "Measured cost of a sleep and wake-up in poll(2), the hybrid spin's floor.")
	queueInfo      = desc("queue_info", "What each queue got at start (always 1): XDP attach mode, zero-copy or copy bind, busy polling, who kicks the tx ring.", "queue", "xdp_mode", "bind", "busy_poll", "tx_kicks")
	napiKnob       = desc("napi_knob_info", "What -napi-suspend did at start to each queue's NAPI knobs (always 1): set, or why not (rejected, unsupported, no-napi).", "queue", "knob", "result")
	httpConns      = desc("http_connections_open", "HTTP connections open now.")
	httpAccepted   = desc("http_connections_accepted_total", "HTTP connections accepted.")
	httpRequests   = desc("http_requests_total", "HTTP request heads read.")
	httpResponses  = desc("http_responses_total", "HTTP responses by status code (those sent at least once).", "code")
	httpPanics     = desc("http_panics_total", "Connection handlers that panicked (recovered; the connection closed).")
	httpLimits     = desc("http_limit_hits_total", "Clients that hit a limit, by limit.", "limit")
	httpBytes      = desc("http_sent_bytes_total", "Bytes written to clients, heads included.")
	httpServed     = desc("http_served_total", "Static responses by where the file came from.", "from")
	httpCache      = desc("http_cache_files", "Files in the cache.")
	httpCacheBytes = desc("http_cache_bytes", "Memory the cache takes, heads included.")
	httpReloads    = desc("http_cache_loads_total", "Cache loads (the first included), by result.", "result")
	httpProxy      = desc("http_proxied_total", "Requests sent to the upstream, by result.", "result")
	tcpConns       = desc("tcp_established", "Netstack connections now established.")
	tcpTimeWait    = desc("tcp_time_wait", "Netstack connections now in TIME-WAIT (at most -max-time-wait).")
	tcpEvents      = desc("tcp_events_total", "Netstack TCP events: connections, segments, loss recovery.", "event")
	httpLogLines   = desc("http_access_log_lines_total", "Access log lines, by fate.", "fate")
	httpLogErrors  = desc("http_access_log_write_errors_total", "Writes to the access log that failed (a full disk, say); the lines they held are lost.")
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}

	hs := c.srv.Stats()
	gauge(httpConns, float64(hs.Open))
	counter(httpAccepted, hs.Accepted)
	counter(httpRequests, hs.Requests)
	for code, n := range hs.Responses {
		counter(httpResponses, n, strconv.Itoa(code))
	}
	counter(httpPanics, hs.Panics)
	for _, l := range []struct {
		name string
		v    uint64
	}{
		{"bad_request", hs.BadRequests}, {"header_timeout", hs.HeaderTimeouts}, {"uri_too_long", hs.URITooLong},
		{"header_too_large", hs.HeaderTooLarge}, {"max_conns", hs.ConnsRefused}, {"idle_timeout", hs.IdleTimeouts},
		{"write_timeout", hs.WriteTimeouts}, {"dot_file", hs.Hidden},
	} {
		counter(httpLimits, l.v, l.name)
	}
	counter(httpBytes, hs.BytesSent)
	counter(httpServed, hs.CacheHits, "cache")
	counter(httpServed, hs.DiskServed, "disk")
	gauge(httpCache, float64(hs.CacheFiles))
	gauge(httpCacheBytes, float64(hs.CacheBytes))
	counter(httpReloads, hs.CacheReloads-hs.CacheErrors, "ok")
	counter(httpReloads, hs.CacheErrors, "failed")
	counter(httpProxy, hs.ProxyRequests-hs.ProxyErrors, "ok")
	counter(httpProxy, hs.ProxyErrors, "failed")
	counter(httpLogLines, hs.AccessLogLines, "queued")
	counter(httpLogLines, hs.AccessLogDropped, "dropped")
	counter(httpLogErrors, hs.AccessLogErrors)

	p := c.path
	if p == nil {
		return
	}
	gauge(wakeCost, p.WakeCost().Seconds())
	for _, pq := range p.Queues() {
		s := pq.Loop.Stats()
		q := strconv.Itoa(s.Queue)
		for _, m := range []irq.Mode{irq.Interrupt, irq.Busy, irq.Hybrid} {
			gauge(queueMode, b2f(m == s.Mode), q, m.String())
		}
		gauge(queuePolling, b2f(s.Polling), q)
		counter(queueSwitches, s.Switches, q)
		ch <- prometheus.MustNewConstMetric(queueSeconds, prometheus.CounterValue, s.PollTime.Seconds(), q, "polling")
		ch <- prometheus.MustNewConstMetric(queueSeconds, prometheus.CounterValue, s.SleepTime.Seconds(), q, "sleeping")
		counter(queueWakeups, s.Wakeups, q)
		counter(queueEmpty, s.EmptyPolls, q)
		counter(queueKicks, s.FillKicks, q)
		gauge(queueSpell, s.Spell.Seconds(), q)
		buckets := make(map[float64]uint64, len(irq.RoundBounds))
		for j, b := range irq.RoundBounds {
			buckets[float64(b)] = s.RoundBuckets[j]
		}
		ch <- prometheus.MustNewConstHistogram(queueRounds, s.RoundCount, float64(s.RoundSum), buckets, q)
		for i, after := range [...]string{irq.WaitAfterSleep: "sleep", irq.WaitPolling: "poll"} {
			w := s.Waits[i]
			wb := make(map[float64]uint64, len(irq.WaitBounds))
			for j, b := range irq.WaitBounds {
				wb[b.Seconds()] = w.Buckets[j]
			}
			ch <- prometheus.MustNewConstHistogram(queueRxWait, w.Count, w.Sum.Seconds(), wb, q, after)
		}
		counter(queueRx, s.RoundSum, q)

		bind := "copy"
		if pq.Socket.ZeroCopy() {
			bind = "zerocopy"
		}
		kicks := nic.TxKicksWriter
		if pq.Socket.TxThread() {
			kicks = nic.TxKicksThread
		}
		gauge(queueInfo, 1, q, p.Steering().Mode().String(), bind, strconv.FormatBool(pq.BusyPoll), kicks.String())

		ns, err := pq.Socket.Stats()
		if err != nil {
			continue
		}
		counter(queueTx, ns.TxFrames, q)
		counter(queueTxFull, ns.TxDrops, q)
		counter(queueTxKicks, ns.TxKicks, q, "writer")
		if pq.Socket.TxThread() {
			counter(queueTxKicks, ns.TxThreadKicks, q, "thread")
			counter(queueTxSleeps, ns.TxThreadSleeps, q)
			counter(queueTxGSO, ns.TxGSOSent, q, "sent")
			counter(queueTxGSO, ns.TxGSOLost, q, "lost")
			counter(queueTxGSO, ns.TxGSODisorder, q, "out_of_order")
		}
		counter(xskRxDropped, ns.Rx_dropped, q)
		counter(xskRxFull, ns.Rx_ring_full, q)
		counter(xskFillEmpty, ns.Rx_fill_ring_empty_descs, q)
		counter(xskTxEmpty, ns.Tx_ring_empty_descs, q)
		counter(xskInvalid, ns.Rx_invalid_descs, q, "rx")
		counter(xskInvalid, ns.Tx_invalid_descs, q, "tx")
	}
	for _, r := range p.NAPI() {
		gauge(napiKnob, 1, strconv.Itoa(r.Queue), r.Knob.String(), r.Outcome.String())
	}
	if v, err := p.Steering().Counters(); err == nil {
		counter(xdpFrames, v.Redirected, "redirected")
		counter(xdpFrames, v.NoSocket, "no_socket")
		counter(xdpFrames, v.NotIP, "not_ip")
		counter(xdpFrames, v.Unparsable, "unparsable")
		counter(xdpFrames, v.NotTCP, "not_tcp")
		counter(xdpFrames, v.NotServed, "not_served")
		counter(xdpFrames, v.SYNCookies, "syn_cookie")
		counter(xdpFrames, v.FloodRSTs, "flood_rst")
		counter(xdpFrames, v.Strays, "stray")
	}
	lc := p.Stack().Counters()
	counter(linkDrops, lc.RxMalformed, "rx_malformed")
	counter(linkDrops, lc.RxStray, "rx_stray")
	counter(linkDrops, lc.TxNoNeighbour, "tx_no_neighbour")
	counter(linkDrops, lc.TxNoTCP, "tx_not_tcp")
	counter(linkGSO, lc.TxGSO, "sent")
	counter(linkGSO, lc.TxGSOErrors, "refused")
	counter(linkACKs, lc.RxACKsCoalesced)
	tc := p.Stack().TCPCounters()
	gauge(tcpConns, float64(tc.Current))
	gauge(tcpTimeWait, float64(tc.TimeWait))
	for _, e := range []struct {
		name string
		v    uint64
	}{
		{"passive_open", tc.PassiveOpens}, {"reset", tc.Resets}, {"timed_out", tc.Timedout},
		{"syn_dropped_listen_full", tc.ListenOverflowSynDrop}, {"ack_dropped_listen_full", tc.ListenOverflowAckDrop},
		{"syn_cookie_sent", tc.SynCookiesSent}, {"syn_cookie_valid", tc.SynCookiesIn}, {"syn_cookie_invalid", tc.SynCookiesInvalid},
		{"open_failed", tc.FailedOpens}, {"dropped", tc.Dropped},
		{"segment_in", tc.SegmentsIn}, {"segment_out", tc.SegmentsOut}, {"segment_invalid", tc.InvalidSegments}, {"checksum_error", tc.Checksum},
		{"retransmit", tc.Retransmits}, {"fast_recovery", tc.FastRecovery}, {"sack_recovery", tc.SACKRecovery},
		{"tail_loss_probe", tc.TLPRecovery}, {"timeout", tc.Timeouts}, {"spurious_recovery", tc.SpuriousRecovery}, {"spurious_timeout", tc.SpuriousRTO},
		{"reorder_seen", tc.ReorderSeen},
		{"time_wait_overflow", tc.TimeWaitOverflows},
	} {
		counter(tcpEvents, e.v, e.name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// queueTable is the table of queues /server-status shows; none on the
// kernel stack.
func queueTable(p *xdpnet.Path) []httpd.StatusTable {
	if p == nil {
		return nil
	}
	t := httpd.StatusTable{Name: "Queue", Columns: []string{"Queue", "Mode", "Polling", "RxFrames", "TxFrames", "Wakeups"}}
	for _, q := range p.Queues() {
		ls := q.Loop.Stats()
		var tx uint64
		if ns, err := q.Socket.Stats(); err == nil {
			tx = ns.TxFrames
		}
		u := func(v uint64) string { return strconv.FormatUint(v, 10) }
		t.Rows = append(t.Rows, []string{strconv.Itoa(ls.Queue), ls.Mode.String(), u(uint64(b2f(ls.Polling))), u(ls.RoundSum), u(tx), u(ls.Wakeups)})
	}
	return []httpd.StatusTable{t}
}
