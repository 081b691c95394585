"""Content negotiation with DRF's answer for the requests almost every client sends, without
parsing their ``Accept`` header: none, ``*/*`` or the JSON the API speaks.

For those DRF's ``DefaultContentNegotiation`` picks the first renderer and its own media type
(bench/RESULTS.md, issue 18: its parsing was ~4% of a runner's append); every other request,
a format override among them, is negotiated by DRF as before.
"""

from rest_framework.negotiation import DefaultContentNegotiation

_MISSING = object()


class FastContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        if renderers and not format_suffix:
            # No header means */*; an empty one accepts nothing (DRF's 406).
            accept = request.META.get("HTTP_ACCEPT", _MISSING)
            accept = "*/*" if accept is _MISSING else accept.strip()
            first = renderers[0]
            plain = accept == "*/*" or accept == first.media_type == "application/json"
            if plain and self.settings.URL_FORMAT_OVERRIDE not in request.query_params:
                return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)
