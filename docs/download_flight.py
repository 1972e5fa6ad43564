# download_flight.py PCAP...: how much a server keeps in flight during a download, and how soon it
# answers an ACK, from a capture on the client end (tcpdump -s 128 ... tcp port 80, one download per
# file). Flight: the server's highest sequence sent less the client's highest ACK, in 1,448-byte
# segments, at each data frame. Turnaround: from a client ACK to the server's next data frame.
# Under loss the congestion control sets the flight, and the turnaround, with it, the rate
# (docs/measured.md, "Loss each way, and the kernel's congestion control"); download_gaps.py splits
# a download's time by whose turn it was. Needs tcpdump; reads its text output.
import subprocess,sys,re,statistics
for f in sys.argv[1:]:
    out=subprocess.run(["tcpdump","-r",f,"-tt","-n","-S"],capture_output=True,text=True).stdout.splitlines()
    pending=None; turns=[]; gaps=[]; lastdata=None; fl=[]; maxseq=0; ack=0
    for l in out:
        t=float(l.split()[0])
        m=re.search(r'\.80 > .* seq (\d+):(\d+)',l)
        if m:
            if pending is not None: turns.append(t-pending); pending=None
            if lastdata is not None: gaps.append(t-lastdata)
            lastdata=t
            maxseq=max(maxseq,int(m.group(2)))
            if ack: fl.append((maxseq-ack)/1448)
            continue
        m=re.search(r'> \S+\.80: Flags \[\.\], ack (\d+)',l)
        if m:
            ack=max(ack,int(m.group(1)))
            if pending is None: pending=t
    turns.sort()
    print(f, "n=%d turnaround p50 %.0f us p90 %.0f us; flight median %.1f; duration %.1f ms" % (len(turns), 1e6*turns[len(turns)//2], 1e6*turns[int(len(turns)*.9)], statistics.median(fl), 1e3*(float(out[-1].split()[0])-float(out[0].split()[0]))))
