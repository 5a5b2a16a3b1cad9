"""The query layer: what every reader asks (state, timeline, diffs, claims, exports, overviews), for the API, the CLI and the page."""
