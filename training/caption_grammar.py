"""A wide casual grammar: ``Facts`` -> one spoken-style sentence, randomly realised.

It is the captioner's teacher: every training sentence comes from here. A sentence says only what
the facts support: the subject, hedged by its confidence ("that's a cat" / "looks like a temple" /
"not sure what that is, but it's mostly blue"), people from the face count, dressed with the
encoder's clothing noun ("someone with a helmet"), an alternative noun when the second guess is
close, and -- each with its own chance -- the subject's colour, the frame's colours, brightness,
black-and-white, position and close-up. Fillers, contractions, exclamations, questions and tags
vary independently, so one fact set has thousands of realisations (29-30 distinct in 30 draws).

    say(facts, random.Random(0), table)   # -> "oh, there's an orange flower on the left"
"""

from __future__ import annotations

import random

from stylize_rt.caption_facts import ALTERNATIVE, CHROMATIC, MENTION_UNSURE, Facts, NounTable, article, confidence

MASS = {"food", "fruit", "bread", "jewelry", "makeup", "fabric", "grain", "gym equipment", "lab glass", "wine",
        "ice cream", "coffee", "ruins"}
NUMBER = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
WEAR_WITH = {"hat", "helmet", "glasses", "mask", "wig", "jewelry", "tie", "bag", "shoe", "sunglasses", "bib"}


def pick(rng: random.Random, options):
    return options[rng.randrange(len(options))]


def with_article(word: str) -> str:
    first = word.split()[0]
    if first in MASS or word in MASS:
        return "some " + word
    return f"{article(word)} {word}"


class Speaker:
    """Realises one fact set; every method draws from ``rng``."""

    def __init__(self, facts: Facts, rng: random.Random, table: NounTable) -> None:
        self.f = facts
        self.rng = rng
        self.table = table
        self.s1 = facts.subjects[0] if facts.subjects else None
        self.g1 = table.groups[self.s1.group] if self.s1 else None
        self.conf = confidence(self.s1.prob) if self.s1 else "low"
        s2 = facts.subjects[1] if len(facts.subjects) > 1 else None
        self.said: set[str] = set()
        self.s2 = s2 if s2 is not None and s2.prob >= ALTERNATIVE and self.conf != "high" else None

    # --- noun phrases ------------------------------------------------------------------
    def noun(self, subject, colour_ok: bool = True) -> str:
        g = self.table.groups[subject.group]
        word = g.noun
        if subject.kind and subject is self.s1 and self.conf == "high" and self.rng.random() < 0.5:
            word = subject.kind
        colour = self.f.subject_colour
        if (colour_ok and subject is self.s1 and colour in CHROMATIC and g.category not in ("scenery", "place", "food", "drink")
                and not self.f.gray and self.rng.random() < 0.45):
            word = f"{colour} {word}"
        return word

    def np(self, subject, colour_ok: bool = True) -> str:
        word = self.noun(subject, colour_ok)
        np_ = with_article(word)
        g = self.table.groups[subject.group]
        if (subject is self.s1 and subject.kind and self.conf == "high" and subject.kind not in word
                and self.rng.random() < 0.25):
            np_ += pick(self.rng, [f", {with_article(subject.kind)} i think", f", like {with_article(subject.kind)}",
                                   f", {with_article(subject.kind)} maybe"])
        return np_ if g.category != "scenery" or self.rng.random() < 0.6 else pick(
            self.rng, [f"{with_article(word)} view", f"{with_article(word)} scene"])

    def people(self, dressed: bool = False) -> str:
        n, r = self.f.faces, self.rng
        if n == 1 and dressed:
            return pick(r, ["a person", "someone", "somebody", "a person"])
        if n == 1:
            if self.f.closeup and r.random() < 0.6:
                return pick(r, ["someone's face, up close", "a close-up of someone", "a face, really close",
                                "someone's face"])
            return pick(r, ["a person", "someone", "somebody", "a face", "a person", "someone"])
        if n in NUMBER and n <= 3 and r.random() < 0.6:
            return pick(r, [f"{NUMBER[n]} people", f"{NUMBER[n]} people" if dressed else f"{NUMBER[n]} faces"])
        if n == 2:
            return pick(r, ["a couple of people", "two people"])
        return pick(r, ["a few people", "a bunch of people", "a group of people", "some people"])

    def wearing(self, person: str) -> str:
        """Person phrase dressed with the clothing noun (top subject is clothing)."""
        g, r = self.g1, self.rng
        item = self.s1.kind if (self.s1.kind and r.random() < 0.6) else g.noun
        if g.noun == "outfit" and not self.s1.kind:
            item = pick(r, ["some kind of outfit", "a costume", "an outfit"])
            return f"{person} in {item}"
        hedge = "" if self.conf != "low" else pick(self.rng, [", i think", " maybe", ""])
        if g.noun in WEAR_WITH:
            return pick(r, [f"{person} with {with_article(item)}", f"{person} wearing {with_article(item)}",
                            f"{person} with {with_article(item)}"]) + hedge
        if g.category == "person":
            return person
        return pick(r, [f"{person} in {with_article(item)}", f"{person} wearing {with_article(item)}"]) + hedge

    # --- clauses -----------------------------------------------------------------------
    def confident(self, np_: str) -> str:
        return pick(self.rng, [
            f"there's {np_}", f"that's {np_}", f"it's {np_}", f"i see {np_}", f"we've got {np_}", f"{np_}!",
            f"{np_}, right there", f"that is definitely {np_}", f"pretty sure that's {np_}", f"yep, {np_}",
            f"{np_}, for sure", f"so that's {np_}", f"there's {np_} here", f"just {np_}", f"i'm looking at {np_}",
            f"you've got {np_} there", f"look, {np_}", f"that's totally {np_}", f"oh that's {np_}",
            f"it's {np_}, nice", f"hey, {np_}",
        ])

    def probable(self, np_: str) -> str:
        r = self.rng
        if self.s2 is not None and r.random() < 0.6:
            np2 = self.np(self.s2, colour_ok=False)
            return pick(r, [f"{np_}, or maybe {np2}", f"either {np_} or {np2}", f"{np_} or {np2}, hard to say",
                            f"{np_}? {np2}? something like that", f"looks like {np_}, or {np2}",
                            f"i think {np_}, or is it {np2}?"])
        return pick(r, [
            f"looks like {np_}", f"i think that's {np_}", f"maybe {np_}?", f"probably {np_}",
            f"kinda looks like {np_}", f"could be {np_}", f"is that {np_}?", f"{np_}, maybe?",
            f"i'm guessing {np_}", f"might be {np_}", f"seems like {np_}", f"{np_}, i think",
            f"not totally sure, but {np_}?", f"some kind of {self.noun(self.s1, False)}, i think",
            f"that looks like {np_} to me",
        ])

    def unsure(self) -> str:
        r = self.rng
        head = pick(r, [
            "not sure what that is", "no idea what this is", "hmm, hard to tell what that is",
            "i can't really tell what that is", "honestly, no clue what that is", "can't quite make that out",
            "i don't know what i'm looking at", "what even is that?", "no clue, honestly", "not sure what i'm seeing",
            "that's a tough one", "hard to say what that is",
        ])
        parts = [head]
        if self.s1 is not None and self.s1.prob >= MENTION_UNSURE and r.random() < 0.5:
            parts.append(pick(r, [f"maybe {self.np(self.s1, False)}?", f"could be {self.np(self.s1, False)}",
                                  f"{self.np(self.s1, False)}, maybe"]))
        parts.append(self.colour_remark(force=True))
        return ", ".join(p for p in parts if p).replace("?,", "?")

    def colour_remark(self, force: bool = False) -> str:
        f, r = self.f, self.rng
        if "colour" in self.said:
            return ""
        if f.gray:
            self.said.add("colour")
            return pick(r, ["but it's all black and white", "it's black and white", "all in black and white",
                            "but it's mostly gray", "it's all kinda gray"])
        if not f.colours or (not force and r.random() < 0.7):
            return ""
        self.said.add("colour")
        c = f.colours
        if len(c) > 1 and r.random() < 0.5:
            return pick(r, [f"but it's mostly {c[0]} and {c[1]}", f"lots of {c[0]} and {c[1]}",
                            f"it's all {c[0]} and {c[1]}"] if force else
                        [f"with lots of {c[0]} and {c[1]}", f"all {c[0]} and {c[1]}"])
        return pick(r, [f"but it's mostly {c[0]}", f"lots of {c[0]}", f"it's pretty {c[0]} though",
                        f"but there's a lot of {c[0]}"] if force else
                    [f"against {with_article(c[0])} background", f"with lots of {c[0]} around",
                     f"everything's kinda {c[0]}"])

    def scene_remarks(self) -> list[tuple[str, str]]:
        """(joiner, remark) pairs: joiner " " attaches to the noun phrase, ", " starts a new bit."""
        f, r = self.f, self.rng
        out = []
        if f.position != "middle" and r.random() < 0.45:
            out.append((" ", pick(r, [f"on the {f.position}", f"over on the {f.position}", f"off to the {f.position}",
                                      f"on the {f.position} side"])))
        if f.closeup and f.faces == 0 and r.random() < 0.4:
            out.append((" ", pick(r, ["up close", "really close up", "super close"])))
        if f.brightness == "dark" and r.random() < 0.55:
            out.append(pick(r, [(" ", "in the dark"), (" ", "at night"), (", ", "and it's pretty dark"),
                                (", ", "kinda dark though")]))
        elif f.brightness == "dim" and r.random() < 0.4:
            out.append(pick(r, [(", ", "kinda dim"), (" ", "in low light"), (", ", "and it's a bit dark")]))
        elif f.brightness == "bright" and r.random() < 0.4:
            out.append(pick(r, [(", ", "nice and bright"), (" ", "in bright light"), (", ", "super bright")]))
        if f.gray and "colour" not in self.said and r.random() < 0.55:
            self.said.add("colour")
            out.append(pick(r, [(" ", "in black and white"), (", ", "all black and white"),
                                (", ", "old black and white photo")]))
        elif r.random() < 0.5:
            c = self.colour_remark()
            if c:
                out.append((" " if c.startswith(("with", "against")) else ", ", c))
        return out

    def opener(self) -> str:
        r = self.rng
        if r.random() < 0.4:
            return ""
        cat = self.g1.category if self.g1 else "thing"
        words = ["oh", "oh hey", "hey", "whoa", "ooh", "okay so", "so", "um", "uh", "hmm", "well", "alright",
                 "wow", "yeah", "oh wow", "okay"]
        if self.conf == "low" and not self.f.faces:
            words = ["hmm", "um", "uh", "huh", "well", "okay", "so", "hm"]
        elif cat == "animal":
            words += ["aw", "aww", "oh look"]
        elif self.f.faces:
            words += ["oh hi", "hello"]
        return pick(r, words)

    def tag(self, sentence: str) -> str:
        r = self.rng
        if sentence.endswith("?") or sentence.endswith("!") or r.random() < 0.55:
            return ""
        cat = self.g1.category if self.g1 else "thing"
        if self.conf == "low" and not self.f.faces:
            return pick(r, ["i guess", "weird", "huh"])
        options = ["nice", "cool", "huh", "neat", "pretty cool", "right?", "i guess"]
        if cat == "animal":
            options += ["so cute", "cute", "how cute is that"]
        elif cat in ("food", "drink"):
            options += ["yum", "looks tasty", "mmm"]
        elif cat in ("place", "scenery"):
            options += ["pretty", "nice view", "beautiful"]
        elif cat == "vehicle":
            options += ["nice ride", "sweet"]
        return pick(r, options)

    # --- the sentence ------------------------------------------------------------------
    def core(self) -> str:
        f, r = self.f, self.rng
        if f.faces > 0:
            clothing = self.g1 is not None and self.g1.category in ("clothing", "person") and self.s1.prob >= 0.08
            person = self.people(dressed=clothing)
            if clothing:
                person = self.wearing(person)
            elif self.s1 is not None and self.conf != "low":
                obj = self.np(self.s1)
                hedge = "" if self.conf == "high" else pick(r, [", i think", " maybe", ", probably"])
                person = pick(r, [f"{person} with {obj}", f"{person} and {obj}", f"{person} next to {obj}"]) + hedge
            return pick(r, [f"there's {person}", f"i see {person}", f"that's {person}", f"{person}!",
                            f"looks like {person}", f"it's {person}", f"{person}, looking right at us",
                            f"{person}, right there", f"we've got {person}", f"here's {person}"])
        if self.s1 is None or self.conf == "low":
            if self.g1 is not None and self.g1.category in ("clothing", "person") and self.s1.prob >= 0.15:
                return pick(r, [f"maybe someone in {with_article(self.g1.noun)}? hard to tell",
                                f"i think there's someone, maybe {with_article(self.g1.noun)}"])
            return self.unsure()
        if self.g1.category in ("clothing", "person"):
            someone = pick(r, ["someone", "a person", "somebody"])
            phrase = self.wearing(someone)
            return self.confident(phrase) if self.conf == "high" else self.probable(phrase)
        np_ = self.np(self.s1)
        return self.confident(np_) if self.conf == "high" else self.probable(np_)

    def sentence(self) -> str:
        r = self.rng
        core = self.core()
        remarks = self.scene_remarks() if not core.endswith("?") or r.random() < 0.3 else []
        text = core
        for joiner, rem in remarks:
            if text.endswith(("?", "!")):
                text = text[:-1]
                joiner = ", "
            if ("," in text[-25:] or "?" in text) and joiner == " ":
                joiner = ", "
            text = f"{text}{joiner}{rem}"
        opener = self.opener()
        if opener and not text.startswith(INTERJECTIONS):
            text = f"{opener}, {text}"
        tag = self.tag(text)
        if tag:
            text = f"{text}, {tag}"
        if r.random() < 0.12 and not text.endswith(("?", "!")):
            text += "!"
        return text


INTERJECTIONS = ("oh", "hey", "look", "yep", "so ", "just", "whoa", "hmm", "um", "uh", "well", "wow", "aw", "okay")


def say(facts: Facts, rng: random.Random, table: NounTable) -> str:
    """One random spoken sentence about ``facts``."""
    return Speaker(facts, rng, table).sentence()


def references(facts: Facts, n: int, seed: int, table: NounTable) -> list[str]:
    """``n`` sentences about ``facts`` from their own seed (held-out references for BLEU)."""
    rng = random.Random(seed)
    return [say(facts, rng, table) for _ in range(n)]


__all__ = ["say", "references", "Speaker", "with_article"]
