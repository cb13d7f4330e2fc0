"""What the backends and the documents share: the printer mixin that spells functions from the
operations table (:mod:`.table`), the plain-text printer (:mod:`.comment`), user texts as data
(:mod:`.text`) and the Jinja2 environment over ``templates/`` (:mod:`.templates`)."""
