// Copyright 2026 The xhttpd Authors.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

package tcp

import (
	"fmt"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// SenderAccountingCheck, when it holds a function, makes every sender check
// its packet counts after each ACK and each transmission, and pass what is
// wrong to that function. xhttpd: for tests; each check walks the write
// list.
var SenderAccountingCheck atomic.Pointer[func(string)]

// checkAccounting checks, if SenderAccountingCheck is set, that
//   - SackedOut counts the packets of the segments walkSACK marked;
//   - out of recovery, Outstanding counts the packets sent and not
//     cumulatively acknowledged (FlightSize), which sendData's in-flight
//     count and postXmit's timer rely on (after a retransmission timeout,
//     Outstanding restarts from 0 by design, so that state is left out);
//   - while data is unacknowledged, a timer is armed to resend it.
//
// +checklocks:s.ep.mu
func (s *sender) checkAccounting(where string) {
	report := SenderAccountingCheck.Load()
	if report == nil {
		return
	}
	sacked := 0
	for seg := s.writeList.Front(); seg != nil; seg = seg.Next() {
		if seg.sackedOut {
			sacked += s.pCount(seg, s.MaxPayloadSize)
		}
	}
	state := fmt.Sprintf("Outstanding %d, SackedOut %d, in flight %d, cwnd %d, recovery %v, state %v, %d bytes unacknowledged",
		s.Outstanding, s.SackedOut, s.flightSize(), s.SndCwnd, s.FastRecovery.Active, s.state, s.SndUna.Size(s.SndNxt))
	switch {
	case sacked != s.SackedOut:
		(*report)(fmt.Sprintf("after %s: the SACKed segments hold %d packets; %s", where, sacked, state))
	case !s.FastRecovery.Active && s.state != tcpip.RTORecovery && s.Outstanding != s.flightSize():
		(*report)(fmt.Sprintf("after %s: Outstanding is not what is in flight; %s", where, state))
	case where == "transmit" && s.SndUna != s.SndNxt && !s.resendTimer.enabled() && !s.probeTimer.enabled() && !s.reorderTimer.enabled():
		(*report)(fmt.Sprintf("after %s: no timer armed with data in flight; %s", where, state))
	}
}
