"""Simulated city traffic: a deterministic generator of agency records and its exports.

``city`` makes the raw records (what agency systems would hold, raw ID numbers
included), ``csv_export`` writes them as the nightly CSV exports of docs/product.md.
Publishing them paced in wall-clock time is ``connectors.simulator``.
"""

from connectors.simulation.city import CityShape, generate_city, stream_city
from connectors.simulation.csv_export import write_csv

__all__ = ["CityShape", "generate_city", "stream_city", "write_csv"]
