"""Unit tests for orchestrator.messaging.door_state: what a class's door keeps between
messages stays bounded, and a student's reply goes up only for a call it was sent."""
from __future__ import annotations

from collections import Counter

from orchestrator.messaging import protocol
from orchestrator.messaging.door_state import (MAX_PENDING, MAX_REFUSALS, MAX_WAITING,
                                               Mailboxes, Report)

NAME, CALLER = "compute.alice_1", "conductor.conductor1"


def call_to_student(n: int = 0) -> dict:
    return protocol.envelope("call", CALLER, "compute", f"m{n}", server="alice_1")


def test_a_reply_goes_up_once_and_only_to_the_caller_of_a_call_delivered():
    mail = Mailboxes(Counter())
    call = call_to_student()
    reply = protocol.reply_to(call, NAME, result=1)
    assert not mail.answers_a_call(NAME, reply)               # not delivered yet
    mail.delivered(NAME, call)
    forged = {**reply, "topic": "scheduler", "server": "scheduler1"}
    assert not mail.answers_a_call(NAME, forged)              # to someone else: no
    mail.delivered(NAME, call)
    assert mail.answers_a_call(NAME, reply)
    assert not mail.answers_a_call(NAME, reply)               # a second time: no
    assert mail.answers_a_call(NAME, protocol.envelope("cast", NAME, "conductor", "x"))


def test_pending_calls_forget_the_oldest_beyond_the_bound():
    mail = Mailboxes(Counter())
    calls = [call_to_student(n) for n in range(MAX_PENDING + 1)]
    for call in calls:
        mail.delivered(NAME, call)
    assert len(mail.pending[NAME]) == MAX_PENDING
    assert not mail.answers_a_call(NAME, protocol.reply_to(calls[0], NAME))
    assert mail.answers_a_call(NAME, protocol.reply_to(calls[-1], NAME))


def test_held_messages_are_bounded_counted_and_taken_once():
    stats: Counter[str] = Counter()
    mail = Mailboxes(stats)
    for n in range(MAX_WAITING + 3):
        mail.hold(NAME, bytes([n % 256]))
    assert stats["undeliverable"] == 3
    held = list(mail.held(NAME))
    assert len(held) == MAX_WAITING and held[0] == bytes([3])
    assert list(mail.held(NAME)) == []


def test_forget_drops_both_for_a_name():
    mail = Mailboxes(Counter())
    mail.delivered(NAME, call_to_student())
    mail.hold(NAME, b"x")
    mail.forget(NAME)
    assert mail.pending == {} and mail.waiting == {}


def test_a_report_is_bounded_and_a_new_one_begins():
    stats: Counter[str] = Counter({"received": 7})
    report = Report(stats)
    for n in range(MAX_REFUSALS + 5):
        report.refuse("x" * 500, "not_your_name", "p" * 500)
    report.cut_off.append(NAME)
    taken = report.take()
    assert len(taken["refusals"]) == MAX_REFUSALS and taken["cut_off"] == [NAME]
    assert len(taken["refusals"][0]["peer"]) == 200
    assert len(taken["refusals"][0]["claimed"]) < 500
    assert taken["counters"]["refusals_unreported"] == 5 and taken["counters"]["received"] == 7
    assert report.take()["refusals"] == [] and report.cut_off == []
