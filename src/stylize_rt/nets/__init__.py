"""The networks (torch): generator, discriminator, captioner model and their checkpoint IO.

One definition of each network, imported alike by training, export and the runtime's
optional torch backend (the way pytorch/examples keeps ``transformer_net.py`` apart from
its training script). Nothing here imports a stage.
"""
