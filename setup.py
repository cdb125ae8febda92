"""Which packages the distribution ships; everything else is in pyproject.toml.

Every package under ``migrate/`` is discovered (a new one cannot be forgotten), and the
top-level ``recipes/`` folder ships inside it as ``migrate._recipes``. pyproject.toml alone
cannot say both: its ``packages.find`` only finds packages where they lie.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["migrate", "migrate.*"]), "migrate._recipes"],
    package_dir={"migrate._recipes": "recipes"},
    package_data={"migrate._recipes": ["*.toml"]},
)
