#!/usr/bin/env python3
"""Writes the seed inputs of the `gateway` fuzz target to seeds/gateway/.

The encoding is the one fuzz_targets/gateway.rs decodes: three header
bytes (flags, table sizes, outgoing queue), then operations, each an
opcode byte (taken modulo 20) and its argument bytes. Run from fuzz/:
    python3 seeds/gateway.py
"""
import os
import struct

# Header flags.
TWO_NODES, AUTO_ANSWER, END_BYES, END_ANSWER = 1, 2, 4, 8
# sessions 4, pending 4, client transactions 8, completed 8; out queue 8.
SIZES, OUT8 = 0b10_10_10_11, 2

# Users, vias, in-dialog methods (indexes into the target's tables).
ALICE, BOB, CAROL, DAVE = 0, 1, 2, 3
UDP, TCP0, TCP1 = 0, 1, 2
INFO, BYE, UPDATE, REINVITE, ACK = 0, 3, 4, 5, 6
# CSTA body templates.
FEATURES, STATUS, MONITOR_START, MONITOR_STOP, MAKE_CALL = 0, 1, 2, 4, 5
CLEAR, ANSWER, HOLD, RETRIEVE = 7, 8, 9, 10


def invite(d, user, line=0, via=UDP, se=0, flags=0):
    return [0, d, user, line, via, se, flags]


def in_dialog(d, method, template=0, p=(0, 0, 0, 0), cseq=0, to=0, via=0):
    return [2, d, method, cseq, to, via, template, *p]


def raw_sip(via, data):
    return [5, via, *struct.pack("<H", len(data)), *data]


def advance(index):
    """index into [deadline, 0, 1, 100, 499, 500, 1000, 2000, 4000, 5000,
    10000, 30000, 32000, 90000, 1800000, 3600000] ms"""
    return [8, index]


def sim(command, a=0, b=0):
    return [11, command, a, b]


def cti(slot, kind, k=0, template=0, p=(0, 0, 0)):
    return [15, slot, kind, k, template, *p]


def scripted(what):
    return [16, what]


SEEDS = {
    # UDP: sign-in, monitor, MakeCall and its events, hold, clear, BYE.
    "udp_make_call": [AUTO_ANSWER | END_BYES | END_ANSWER, SIZES, OUT8]
    + invite(0, ALICE)
    + in_dialog(0, ACK)
    + in_dialog(0, INFO, MONITOR_START)
    + in_dialog(0, INFO, MAKE_CALL)
    + advance(6)
    + in_dialog(0, INFO, HOLD)
    + in_dialog(0, INFO, RETRIEVE)
    + in_dialog(0, INFO, CLEAR)
    + in_dialog(0, INFO, FEATURES)
    + in_dialog(0, BYE),
    # TCP: bob with a session timer, an incoming call answered, hung up,
    # then the session expires.
    "tcp_incoming_call": [AUTO_ANSWER | END_ANSWER, SIZES, OUT8]
    + invite(1, BOB, line=2, via=TCP0, se=1)
    + in_dialog(1, ACK)
    + in_dialog(1, INFO, MONITOR_START)
    + sim(0, 0, 1)
    + in_dialog(1, INFO, ANSWER)
    + sim(3)
    + in_dialog(1, UPDATE)
    + advance(14)
    + advance(10),
    # Two nodes: the scripted one comes up, serves bob's monitor and
    # sends an event; then heartbeats go unanswered.
    "scripted_node": [TWO_NODES | AUTO_ANSWER | END_BYES | END_ANSWER, SIZES, OUT8]
    + scripted(0)
    + cti(1, 0)
    + invite(0, ALICE)
    + in_dialog(0, ACK)
    + invite(1, BOB)
    + in_dialog(1, ACK)
    + in_dialog(1, INFO, MONITOR_START)
    + cti(1, 0)
    + cti(1, 1, template=16)
    + in_dialog(1, INFO, MAKE_CALL)
    + cti(1, 0, template=1)
    + advance(11)
    + advance(11)
    + [19, 3],
    # No answers from Lync, one session: events time out, a new INVITE
    # replaces the session, another user finds the table full.
    "unanswered_full": [0, 0b10_10_10_00, OUT8]
    + invite(0, ALICE)
    + in_dialog(0, ACK)
    + in_dialog(0, INFO, MONITOR_START)
    + in_dialog(0, INFO, MAKE_CALL)
    + advance(6)
    + invite(1, ALICE)
    + invite(2, BOB)
    + advance(12)
    + advance(10),
    # Odds and ends: OPTIONS, a ping split, a node killed and revived,
    # a shutdown with an INVITE after it.
    "shutdown": [END_ANSWER, SIZES, OUT8]
    + raw_sip(UDP, b"OPTIONS sip:ctigw@gw SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKo1\r\n"
              b"From: <sip:alice@example.com>;tag=o\r\nTo: <sip:ctigw@gw>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\n"
              b"Content-Length: 0\r\n\r\n")
    + [17, 0, 0, 2, 0]
    + invite(0, CAROL, line=4, via=TCP1)
    + in_dialog(0, ACK)
    + [12, 0]
    + in_dialog(0, INFO, STATUS)
    + [12, 1]
    + advance(10)
    + [10]
    + invite(1, DAVE),
}


def main():
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gateway")
    os.makedirs(here, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(here, name + ".bin"), "wb") as f:
            f.write(bytes(data))


if __name__ == "__main__":
    main()
