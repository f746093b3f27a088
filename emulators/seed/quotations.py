"""Sales quotations and their lines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulators.seed import reference as ref
from emulators.seed.documents import SalesDocuments
from emulators.seed.layout import (
    CHUNK,
    QUOTE_BLOCK,
    QUOTE_DRAFT,
    QUOTE_STATE_STATUS,
    QUOTE_WON,
    QUOTE_WRITE_IN,
    Batch,
    position_in,
    random_suffix,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


class QuotationRows(SalesDocuments):
    """Sales quotations and their lines."""

    def _quote_rows(self, start: int, stop: int) -> tuple[list, list]:
        headers, lines = [], []
        for i in range(start, stop):
            company = ref.COMPANIES[i % 2]
            pos = position_in(i, QUOTE_BLOCK)
            _, a, _ = self.numbers("quote", i)
            state = "draft" if pos in QUOTE_DRAFT else "won" if pos == QUOTE_WON else "active"
            statecode, statuscode = QUOTE_STATE_STATUS[state]
            header = {
                "quoteid": self.guid("quote", i),
                "name": f"Quote for {company.business_unit} #{i + 1}",
                "quotenumber": f"QUO-{1000 + i:05d}-{random_suffix(a)}",
                "revisionnumber": 0,
                "statecode": statecode,
                "statuscode": statuscode,
                "msdynce_ismaintainedexternally": 0,
                **self._sales_header_common("quote", i, company),
            }
            line_facts = self._sales_lines(
                "quote", i, company, write_in=pos == QUOTE_WRITE_IN, native=False, rounding_example=False
            )
            header, line_rows = self._sales_document(
                "quote",
                "quotes",
                "quotedetails",
                i,
                company,
                header,
                line_facts,
                "quoteid",
                {"quotestatecode": statecode, "msdynce_quoterevisionnumber": 0},
            )
            for line in line_rows:
                line["msdynce_quotehasexternalmaintainedproductsonly"] = header[
                    "msdynce_hasexternallymaintainedproductsonly"
                ]
            headers.append(self.row("dataverse", "quotes", header))
            lines.extend(self.row("dataverse", "quotedetails", line) for line in line_rows)
        return headers, lines

    def quotes(self) -> Iterator[Batch]:
        for start in range(0, self.plan.quotes, CHUNK):
            headers, lines = self._quote_rows(start, min(start + CHUNK, self.plan.quotes))
            yield "dataverse", "quotes", headers
            yield from self.chunked("dataverse", "quotedetails", iter(lines))
