"""The sandbox: the shapes world with an exact image tokenizer and a pretrained tiny unified base model.

The paper fine-tunes a unified model (Anole) that already reads and writes images. The sandbox shares that
premise at laptop scale: :mod:`~wm_hub.sandbox.cells` reads decoded cells back, :mod:`~wm_hub.sandbox.tokenizer`
fits a Chameleon-layout VQGAN whose codes are the cells' contents, :mod:`~wm_hub.sandbox.text` builds the text
tokenizer and scene descriptions, and :mod:`~wm_hub.sandbox.pretrain` pretrains the base without actions.
"""
