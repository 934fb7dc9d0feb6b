"""Texts to synthesize: generated training sentences and a fixed held-out set.

The held-out sentences (``HELD_OUT``) are written by hand for this project and never generated,
so no evaluation sentence is a training sentence. Training sentences come from a small grammar over
the word lists below, optionally mixed with random words of festival's CMU lexicon when it is
installed (phonetic variety; the words need not make sense to a synthesizer).
"""

from __future__ import annotations

import pathlib
import random

HELD_OUT = (
    "The museum opens at nine on weekdays, but the café stays closed until noon.",
    "Please put the blue box back where you found it.",
    "My brother moved to a small village by the sea last summer.",
    "Could you help me carry these heavy bags up the stairs?",
    "We watched the moon rise over the quiet valley.",
    "Thank you for waiting, your table will be ready soon.",
    "The children built a tall tower from wooden blocks.",
    "She measured the flour twice before mixing the dough.",
    "A fresh breeze pushed the boat toward the northern shore.",
    "Every morning the baker bakes thirty loaves of bread.",
    "I think the weather will change by Thursday.",
    "Put your phone away and enjoy the view.",
    "His voice was calm, but his hands were shaking.",
    "The judge asked both lawyers to approach the bench.",
    "Our flight was delayed because of thick fog.",
    "Bring me the map, and we can plan the route together.",
    "Maybe the problem is simpler than it looks.",
    "The old bridge was painted bright purple in June.",
    "Few people know that owls cannot move their eyes.",
    "Which of these shoes would you like to buy?",
    "The plumber fixed the pipe beneath the kitchen sink.",
    "We should vote before the polls close tonight.",
    "Her poem about the forest won first prize.",
    "The battery died halfway through the movie.",
    "Mom made pumpkin soup with a pinch of pepper.",
    "Two boys were playing ball in the park.",
    "The engine makes a strange noise when it is cold.",
    "Would you mind opening the window a little?",
    "The zoo keeper fed the hungry zebras at five.",
    "Nobody expected the show to be such a huge success.",
    "Measure twice and cut once, my father always said.",
    "The teacher wrote three equations on the board.",
    "Birds were singing in the bushes behind the barn.",
    "Pack a warm jacket, because the mountain gets chilly at night.",
    "This soup smells wonderful, what did you put in it?",
    "The bank will approve the loan by Monday.",
    "A thousand tiny bubbles floated up through the water.",
    "Please remember to feed the fish while I am away.",
    "The jury reached a verdict after a long debate.",
    "Good ideas often come when you least expect them.",
    "Bob bought a bunch of bananas and a bottle of milk.",
    "The pilot announced that we would land in twenty minutes.",
    "I usually walk to work when the weather is fine.",
    "The museum guide spoke about ancient Roman coins.",
    "Open the map and show me where the beach is.",
    "Voices echoed through the empty hallway.",
    "They moved the piano into the living room.",
    "The puppy chewed my brand new boots.",
    "Sometimes the simplest answer is the right one.",
    "We booked a cabin by the lake for the whole week.",
    "Keep the receipt in case you want to return it.",
    "The wind blew the papers off the desk.",
    "A good map makes every journey easier.",
    "Pam lives in a pink house beside the bakery.",
    "The orchestra played beautifully under the new conductor.",
    "How much does a ticket to Boston cost?",
    "Frozen berries are perfect for a morning smoothie.",
    "The mayor promised to rebuild the old library.",
    "Whatever happens, we will face it together.",
    "Both of my cousins are studying medicine abroad.",
)


def _words(text: str) -> list[str]:
    """The whitespace-separated words of ``text``."""
    return text.split()


_NOUNS = _words(
    """
apple arm baby back ball band bank bath beach bear bed bell bike bird blanket boat body bone book
boot bottle box boy brain bread bridge brother brush bucket bus butter button cake camera candle car
card cat chair cheese chicken child church city clock cloud coat coffee corner cow cup dancer
daughter desk dinner doctor dog door dream dress drum duck ear earth egg engine eye face family farm
father feather field finger fire fish flag floor flower foot forest fork friend frog garden gate
gift girl glass glove goat gold grape grass guitar hair hammer hand hat head heart hill horse house
ice island jacket jam jar jelly judge juice key king kitchen kite knee knife ladder lake lamp leaf
leg lemon letter lion lip lock machine map market meal milk mirror monkey month moon morning mother
mountain mouse mouth music nail neck needle nest night nose note ocean office orange oven owl page
paint paper parent park party pen pencil pepper person piano picture pie pig pillow pipe pizza plane
plant plate pocket poem potato prince queen rabbit radio rain ring river road rock roof room rope
rose salt sand school sea seed sheep shelf ship shirt shoe shop shoulder singer sister sky smile
snake snow sock soldier son song soup spoon spring square star station stick stone street sugar
summer sun table tail teacher teeth thief thing thumb ticket tiger toe tongue tooth tower town toy
train tree truck umbrella uncle valley van vase village violin voice wagon wall watch water wave
week wheel whistle window wing winter wolf woman wood word worker yard year zebra zoo
"""
)
_ADJECTIVES = _words(
    """
angry big bitter black blue bold brave bright broken brown busy calm cheap clean clever cold cool
cozy curly damp dark deep dirty dry dull eager early empty fair famous fast fat fine flat fresh
friendly full funny gentle giant glad golden good gray great green happy hard heavy high hollow hot
huge hungry icy jolly kind large late lazy light little long loud lovely lucky mad messy mighty
modern narrow neat new nice noisy odd old orange pale pink plain polite poor proud purple quick
quiet rapid rare red rich ripe rough round royal sad safe sharp shiny short shy silent silver simple
slim slow small smooth soft sour spicy steep sticky strange strong sweet tall thick thin tidy tiny
tough ugly usual vast warm wet white wide wild wise wooden yellow young
"""
)
_VERBS = _words(
    """
asked baked bought brought built burned called carried caught chased checked cleaned climbed closed
cooked counted covered crossed cut danced dropped drove fed fetched filled fixed followed found
grabbed helped hid held hugged jumped kept kicked kissed knew left lifted liked loved made measured
missed moved needed opened packed painted passed picked planted played pulled pushed reached read
saw sent shared showed sold sorted stopped studied found taught thanked threw touched traded turned
used visited wanted washed watched wore wrapped wrote
"""
)
_PREPOSITIONS = _words(
    """
above across after against along around at before behind below beside by for from in into near of
off on over past through to toward under with without
"""
)
_DETERMINERS = _words(
    """
a the the this that my your his her our their every some one two three four five
"""
)
_NAMES = _words(
    """
Adam Alice Bob Beth Charles Chloe David Diana Edward Emma Frank Fiona George Grace Harry Helen Ivan
Julia Jack Kate Liam Lucy Mike Mary Nora Oliver Paul Peter Quinn Rose Sam Sophie Tom Uma Victor
Wendy Zoe
"""
)
_ADVERBS = _words(
    """
quickly slowly quietly loudly gently carefully happily sadly suddenly often never always again today
yesterday tomorrow now soon later early
"""
)
_QUESTIONS = _words("who what where when why how which")


def _noun_phrase(rng: random.Random) -> str:
    if rng.random() < 0.15:
        return rng.choice(_NAMES)
    words = [rng.choice(_DETERMINERS)]
    if rng.random() < 0.6:
        words.append(rng.choice(_ADJECTIVES))
    words.append(rng.choice(_NOUNS) + ("s" if words[0] in ("two", "three", "four", "five", "some") else ""))
    return " ".join(words)


def sentence(rng: random.Random) -> str:
    """One generated sentence from the grammar."""
    form = rng.random()
    subject = _noun_phrase(rng)
    verb = rng.choice(_VERBS)
    obj = _noun_phrase(rng)
    tail = f" {rng.choice(_PREPOSITIONS)} {_noun_phrase(rng)}" if rng.random() < 0.6 else ""
    adverb = f" {rng.choice(_ADVERBS)}" if rng.random() < 0.3 else ""
    if form < 0.15:
        text = f"{rng.choice(_QUESTIONS)} {verb} {obj}{tail}?"
    elif form < 0.3:
        second = f"{_noun_phrase(rng)} {rng.choice(_VERBS)} {_noun_phrase(rng)}"
        text = f"{subject} {verb} {obj}, and {second}{adverb}."
    else:
        text = f"{subject}{adverb} {verb} {obj}{tail}."
    return text[0].upper() + text[1:]


def lexicon_words(
    path: pathlib.Path = pathlib.Path("/usr/share/festival/dicts/cmu/cmudict-0.4.out"),
) -> list[str]:
    """Plain alphabetic words of festival's CMU lexicon (empty when it is not installed)."""
    if not path.is_file():
        return []
    words = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith('("'):
            word = line[2 : line.index('"', 2)]
            if word.isalpha() and word.islower() and 2 <= len(word) <= 10:
                words.append(word)
    return sorted(set(words))


def training_texts(count: int, seed: int, lexicon: list[str] | None = None, lexicon_share: float = 0.3) -> list[str]:
    """``count`` training texts: grammar sentences, and random lexicon words for ``lexicon_share``."""
    rng = random.Random(seed)
    held = {s.lower() for s in HELD_OUT}
    out: list[str] = []
    while len(out) < count:
        if lexicon and rng.random() < lexicon_share:
            text = " ".join(rng.choice(lexicon) for _ in range(rng.randint(4, 10))).capitalize() + "."
        else:
            text = sentence(rng)
        if text.lower() not in held:
            out.append(text)
    return out


# Pseudo-words for festival's non-English training voices: random syllables spelt in each
# language's regular orthography (onsets, nuclei, codas), so their letter-to-sound rules give
# varied, well-formed phone sequences. Meaning does not matter for learning mouth shapes.
_SYLLABLES = {
    "it": (
        [*_words("p b t d c g f v s z m n l r pp tt cc ll mm ch gh sc gn gl br tr st sp pr fr"), ""],
        _words("a e i o u ia io ie uo"),
        ["n", "l", "r"],
    ),
    "cs": (
        [*_words("p b t d k g f v s z m n l r j h ch c pr st tr br kl"), ""],
        _words("a e i o u y ou"),
        _words("k t s m n l"),
    ),
    "fi": (
        [*_words("p t k d g s h v j l r m n kk tt pp ss ll"), ""],
        _words("a e i o u y aa ii uu ei ai uo ie"),
        _words("n s t l"),
    ),
    "ca": (
        [*_words("p b t d c qu g gu f v s ss z m n l r rr x j ll ny pl tr"), ""],
        _words("a e i o u ia"),
        _words("n l r s t"),
    ),
    "ru": (
        [*_words("п б т д к г ф в с з ш ж х ч щ ц м н л р й"), ""],  # noqa: RUF001
        _words("а э ы у о я е и ю"),  # noqa: RUF001
        _words("т н л с й к"),  # noqa: RUF001
    ),
    # Devanagari: a consonant letter carries the vowel a; the nuclei are the vowel signs.
    "hi": (
        _words("प ब भ त द थ ध ट ड क ग ख घ च ज फ़ व स श ह म न ण ल र य"),
        ["", *_words("ा ि ी ु ू े ै ो ौ")],
        _words("ं न ल र स"),
    ),
}


def foreign_texts(lang: str, count: int, seed: int) -> list[str]:
    """``count`` lines of pseudo-words for a language of :data:`_SYLLABLES`."""
    rng = random.Random(seed)
    onsets, nuclei, codas = _SYLLABLES[lang]
    out = []
    for _ in range(count):
        words = []
        for _ in range(rng.randint(4, 10)):
            word = "".join(rng.choice(onsets) + rng.choice(nuclei) for _ in range(rng.randint(1, 3)))
            if rng.random() < 0.3:
                word += rng.choice(codas)
            words.append(word)
        sep = ", " if rng.random() < 0.3 else " "
        half = len(words) // 2
        out.append(" ".join(words[:half]) + sep + " ".join(words[half:]) + ".")
    return out
