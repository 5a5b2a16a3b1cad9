"""Pure folds over a negotiation's events and the read models they answer at (as_of, known_at)."""

from projections.deadlines import DeadlinesView, DeadlineView, Extension, deadlines
from projections.issues import IssuesView, IssueView, issues
from projections.measures import MeasuresView, MeasureView, PendingChange, measures
from projections.rounds import RoundsView, RoundView, rounds
from projections.state import Fact, State, View, evolve, fold, view
from projections.statements import StatementsView, StatementView, statements
from projections.tariffs import (
    MeasureRate,
    TariffDirection,
    TariffScheduleView,
    TruceLapse,
    tariff_schedule,
)
from projections.truce import TruceView, truce

__all__ = [
    "DeadlineView",
    "DeadlinesView",
    "Extension",
    "Fact",
    "IssueView",
    "IssuesView",
    "MeasureRate",
    "MeasureView",
    "MeasuresView",
    "PendingChange",
    "RoundView",
    "RoundsView",
    "State",
    "StatementView",
    "StatementsView",
    "TariffDirection",
    "TariffScheduleView",
    "TruceLapse",
    "TruceView",
    "View",
    "deadlines",
    "evolve",
    "fold",
    "issues",
    "measures",
    "rounds",
    "statements",
    "tariff_schedule",
    "truce",
    "view",
]
