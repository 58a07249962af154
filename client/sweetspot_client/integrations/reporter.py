"""``BackgroundReporter`` moved to ``sweetspot_client.reporter`` (``PromptCurriculum`` uses it
too); this name keeps working for code that imported it from here."""

from sweetspot_client.reporter import BackgroundReporter, PendingReport, ReporterCounts

__all__ = ["BackgroundReporter", "PendingReport", "ReporterCounts"]
