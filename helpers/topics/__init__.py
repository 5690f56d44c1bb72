"""One module per chapter topic; each is written for its chapter and tested on its own.

:mod:`~helpers.topics.large_models` (the cited table of landmark models; compute, memory and
serving estimates), :mod:`~helpers.topics.servitization` (one job run serially, on a process
pool and on HTTP worker services), :mod:`~helpers.topics.optim` (losses, gradients and optimizers
in NumPy; the chapter's checks and figures in :mod:`~helpers.topics.learning_maths`), :mod:`~helpers.topics.recipe` (the ablation ladder and resumable training; its building
blocks in :mod:`~helpers.topics.recipe_parts`),
:mod:`~helpers.topics.parallel` (data-parallel training), :mod:`~helpers.topics.scaling`
(scaling laws), :mod:`~helpers.topics.federated` (federated averaging),
:mod:`~helpers.topics.interpret` (saliency and Grad-CAM), :mod:`~helpers.topics.compute_cost`
(FLOPs and energy), :mod:`~helpers.topics.backends` (the same Keras code on each backend).
"""
