"""
The fixed "world" behind the embedded corpus: word banks, a small table of true facts, and the sentence
templates that talk about them (fact phrasings, story frames, dialogue lines).

The other modules of nanochat/synthetic/ compose documents, conversations and math problems from these
tables. Keeping them here (data only, plus four tiny English helpers) keeps the generator readable. Every fact below
is meant to be true and uncontroversial; where a fact is disputed (a country spanning two continents,
a capital that is moving) the row is simply left out rather than simplified into something false.

Deliberately NOT here: any randomness, any I/O, anything mutable. All tables are tuples built once at
import from literal strings, so iteration order is fixed and never depends on PYTHONHASHSEED.
"""

from typing import NamedTuple


def _items(text):
    """'a, b c, d' -> ('a', 'b c', 'd'): banks are written as comma-separated lists to stay compact."""
    return tuple(w.strip() for w in text.replace("\n", " ").split(",") if w.strip())


def _rows(text, n):
    """Parse 'f1 | f2 | ... ; next row' tables; '-' marks a missing field (None)."""
    rows = []
    for line in text.replace("\n", " ").strip().split(";"):
        fields = [f.strip() for f in line.split("|")]
        if len(fields) != n:
            raise ValueError(f"bad table row {line!r}: expected {n} fields separated by '|'")
        rows.append(tuple(None if f == "-" else f for f in fields))
    return tuple(rows)


# -----------------------------------------------------------------------------
# English helpers

_IRREGULAR_PLURALS = {
    "child": "children", "person": "people", "mouse": "mice", "goose": "geese", "tooth": "teeth",
    "foot": "feet", "man": "men", "woman": "women", "sheep": "sheep", "deer": "deer", "fish": "fish",
    "knife": "knives", "leaf": "leaves", "loaf": "loaves", "wolf": "wolves", "shelf": "shelves",
    "scarf": "scarves", "potato": "potatoes", "tomato": "tomatoes", "echo": "echoes", "hero": "heroes",
    "cactus": "cacti", "octopus": "octopuses", "salmon": "salmon", "bison": "bison", "moose": "moose",
}
_AN_EXCEPTIONS = ("uni", "use", "usu", "eu", "one", "once")  # vowel letters that sound like "yoo"/"w"
_AN_SILENT_H = ("hour", "honest", "honor", "heir")


def plural(noun):
    """English plural of a (possibly multi-word) noun phrase: only the last word changes."""
    if " of " in noun:  # "bowl of soup" -> "bowls of soup"
        first, _, rest = noun.partition(" of ")
        return plural(first) + " of " + rest
    head, _, last = noun.rpartition(" ")
    if last in _IRREGULAR_PLURALS:
        p = _IRREGULAR_PLURALS[last]
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        p = last + "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        p = last[:-1] + "ies"
    else:
        p = last + "s"
    return f"{head} {p}" if head else p


def article(phrase):
    """'apple' -> 'an apple', 'house' -> 'a house', 'hour' -> 'an hour', 'unicorn' -> 'a unicorn'."""
    low = phrase.lower()
    vowel = low[:1] in "aeiou" and not low.startswith(_AN_EXCEPTIONS)
    if vowel or low.startswith(_AN_SILENT_H):
        return "an " + phrase
    return "a " + phrase


def cap(s):
    """Capitalise the first letter only ('the United States' -> 'The United States')."""
    return s[:1].upper() + s[1:]


_ONES = _items("zero, one, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve, thirteen, "
               "fourteen, fifteen, sixteen, seventeen, eighteen, nineteen")
_TENS = _items("-, -, twenty, thirty, forty, fifty, sixty, seventy, eighty, ninety")


def number_word(n):
    """0..999 in words: 42 -> 'forty-two', 305 -> 'three hundred and five'."""
    if not 0 <= n < 1000:
        raise ValueError(f"number_word handles 0..999, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _ONES[n % 10])
    rest = n % 100
    return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_word(rest))


# -----------------------------------------------------------------------------
# People and places (all invented; no real persons)

FEMALE_NAMES = _items("""
Alice, Amara, Amelia, Ana, Anna, Aisha, Beatrice, Bella, Camila, Carmen, Chloe, Clara, Daisy, Dana, Diana,
Elena, Eliza, Ella, Emma, Erin, Eva, Fatima, Fiona, Freya, Grace, Greta, Hana, Hannah, Harriet, Hazel, Helen,
Ida, Imani, Ines, Iris, Isla, Ivy, Jade, Jasmine, Julia, June, Kate, Keiko, Lara, Layla, Lea, Leila, Lena,
Lily, Linda, Lucia, Lucy, Luna, Mae, Maria, Maya, Mei, Mia, Mila, Mina, Molly, Nadia, Naomi, Nina, Nora,
Olivia, Paula, Pia, Priya, Quinn, Rachel, Rosa, Rose, Ruby, Ruth, Sara, Sofia, Stella, Susan, Tara, Tess,
Uma, Vera, Violet, Wendy, Yara, Yuki, Zara, Zoe, Agnes, Bianca, Celia, Dora, Edith, Flora, Gemma, Hilda,
Irene, Joy, Kira, Lola, Marta, Nell, Opal, Petra, Rita, Selma, Thea, Una, Wanda, Xenia, Yasmin, Zelda
""")
MALE_NAMES = _items("""
Aaron, Adam, Ahmed, Alex, Amir, Andre, Arjun, Arthur, Ben, Bruno, Caleb, Carlos, Daniel, David, Diego,
Dmitri, Eli, Elias, Emil, Ethan, Felix, Finn, Frank, Gabriel, George, Hamza, Hans, Harry, Hector, Henry,
Hugo, Ian, Igor, Isaac, Ivan, Jack, Jacob, James, Javier, Jonas, Jose, Kai, Kenji, Kofi, Leo, Liam, Louis,
Lucas, Luke, Marco, Mark, Mateo, Max, Miguel, Milo, Musa, Nathan, Nico, Noah, Oliver, Omar, Oscar, Owen,
Pablo, Paul, Pedro, Peter, Rafael, Ravi, Ray, Ryan, Sam, Samuel, Santiago, Simon, Stefan, Theo, Thomas,
Tim, Tobias, Tom, Victor, Viktor, Walter, Will, Yusuf, Zane, Abel, Basil, Cyrus, Dario, Edgar, Fabio,
Gus, Hiro, Ike, Joel, Kurt, Lars, Mateus, Ned, Otto, Quentin, Rolf, Silas, Teo, Ugo, Vince, Wes, Yann
""")
SURNAMES = _items("""
Abbott, Adler, Baker, Barnes, Becker, Bell, Bishop, Brooks, Carter, Chen, Clarke, Cole, Cooper, Cruz,
Dalton, Diaz, Dixon, Ellis, Evans, Fischer, Fleming, Ford, Garcia, Gray, Hale, Hart, Hayes, Hill, Hughes,
Ito, Jensen, Kahn, Keller, Kim, Klein, Lang, Larsen, Lopez, Mason, Meyer, Miller, Moreau, Nakamura, Novak,
Okafor, Olsen, Park, Patel, Perez, Price, Quinn, Reed, Reyes, Rossi, Santos, Schmidt, Silva, Singh,
Stone, Tanaka, Torres, Turner, Vogel, Walsh, Ward, Weber, Wells, West, Wood, Young, Zhang
""")
RELATIVES = _items("mother, father, grandmother, grandfather, aunt, uncle, sister, brother, cousin, neighbor, "
                   "best friend, teacher")
PET_NAMES = _items("Pip, Biscuit, Clover, Pepper, Rusty, Whiskers, Bramble, Nutmeg, Sunny, Pebble, Ziggy, Mochi, "
                   "Button, Maple, Thistle, Comet, Poppy, Socks, Juniper, Acorn, Ginger, Tumble, Sprout, Bean")
TIMES = _items("""
one morning, that afternoon, the next day, later that evening, after lunch, at sunrise, just before sunset,
on Monday, on a Tuesday in spring, one rainy Wednesday, on Thursday, early on Friday, on Saturday morning,
one Sunday, a week later, the following morning, at noon, in the middle of the night, that winter,
one summer day, after school, before breakfast, on the last day of the holidays
""")
TOWNS = _items("""
Ashford, Brookvale, Cedar Falls, Dunmore, Eastwick, Fairhaven, Glenbrook, Hollow Creek, Ivybridge,
Juniper Bay, Kingsmere, Larkspur, Millbrook, Northfield, Oakridge, Pine Hollow, Queensbury, Riverton,
Stonebridge, Thornbury, Umberfield, Valemont, Willowdale, Westmoor, Yarrow Point, Amberley, Birchwood,
Copperhill, Deepwater, Elmstead, Foxley, Greystone, Harborview, Lowmead, Maplewood, Newhaven, Redcliff
""")
# Places a character can go to, with their article ("to the market", "to school").
PLACES = _items("""
the market, the library, the park, the river, the beach, the forest, the bakery, the old bridge, school,
the harbor, the train station, the museum, the garden, the hill behind the house, the lake, the farm,
the playground, the post office, the hospital, the town square, the zoo, the cinema, the swimming pool,
the mountain path, the village shop, the bus stop, the cafe, the meadow, the bookshop, the workshop,
the orchard, the pier, the lighthouse, the field, the castle ruins, the stadium, the attic, the kitchen,
the cellar, the barn, the pond, the clock tower, the bakery on the corner, the top of the hill
""")
# Nature scenery nouns for descriptions and poems.
SCENERY = _items("""
sky, sea, river, forest, meadow, mountain, valley, lake, hill, field, garden, shore, desert, island,
stream, cliff, cave, waterfall, orchard, marsh, canyon, glacier, prairie, pond, wood
""")

# -----------------------------------------------------------------------------
# Things

FOODS = _items("""
apple, banana, orange, pear, peach, plum, cherry, grape, lemon, mango, strawberry, melon, pineapple,
carrot, potato, tomato, onion, cucumber, pepper, pumpkin, cabbage, bean, pea, sandwich, pie, cake,
cookie, muffin, pancake, biscuit, bowl of soup, bowl of rice, plate of pasta, loaf of bread, cup of tea,
glass of milk, jar of honey, piece of cheese, egg, pizza, salad, bun, waffle, cupcake, pretzel, bagel,
avocado, coconut, walnut, almond, chocolate bar, bowl of porridge, omelette, dumpling, taco, noodle
""")
OBJECTS = _items("""
book, lamp, chair, table, cup, bottle, box, basket, bag, blanket, pillow, clock, mirror, key, ring,
coin, letter, map, notebook, pencil, pen, paintbrush, umbrella, hat, scarf, coat, boot, sock, glove,
kite, ball, doll, puzzle, drum, guitar, violin, flute, piano, bicycle, wagon, sled, boat, candle, rope,
bucket, shovel, ladder, hammer, jar, bowl, plate, spoon, fork, knife, teapot, kettle, radio, camera,
telescope, compass, backpack, suitcase, wallet, watch, necklace, bracelet, shell, feather, stone,
pebble, marble, button, ribbon, envelope, postcard, photograph, painting, statue, flag, tent, lantern,
flashlight, fishing rod, skateboard, helmet, whistle, bell, trophy, medal, treasure chest, music box
""")
# Tools and objects with what they are and what they are for, used for definitions.
DEFINED_THINGS = _rows("""
hammer | tool | used to drive nails into wood;
saw | tool | used to cut wood into pieces;
screwdriver | tool | used to turn screws;
ladder | piece of equipment | used to climb up to high places;
spoon | utensil | used to eat soup and stir food;
fork | utensil | used to pick up food when eating;
kettle | kitchen appliance | used to boil water;
oven | kitchen appliance | used to bake and roast food;
refrigerator | kitchen appliance | used to keep food cold and fresh;
umbrella | folding canopy | used to keep the rain off;
compass | instrument | used to find which way is north;
telescope | instrument | used to look at faraway things such as stars and planets;
microscope | instrument | used to see things that are too small for the eye;
thermometer | instrument | used to measure temperature;
clock | device | used to tell the time;
calendar | chart of days | used to keep track of dates;
map | drawing of an area | used to find the way from one place to another;
dictionary | book | used to look up what words mean;
bicycle | vehicle with two wheels | ridden by pushing pedals;
boat | vehicle | used to travel on water;
bridge | structure | built so people can cross a river or a road;
lighthouse | tower with a bright light | built to warn ships away from rocks;
calculator | small machine | used to do arithmetic;
pencil | writing tool | used to write or draw, and its marks can be erased;
broom | brush with a long handle | used to sweep floors;
bucket | open container | used to carry water;
tent | shelter made of cloth | used for sleeping outdoors;
lantern | lamp with a cover | used to carry light in the dark;
wheelbarrow | small cart with one wheel | used to move heavy loads in a garden;
anchor | heavy metal hook | used to keep a ship in place
""", 3)
PROFESSIONS = _rows("""
baker | bakes bread, cakes and pastries;
teacher | helps students learn at school;
doctor | looks after sick people and helps them get better;
nurse | cares for patients in a hospital or clinic;
farmer | grows crops and raises animals;
firefighter | puts out fires and rescues people;
pilot | flies airplanes;
carpenter | builds and repairs things made of wood;
librarian | looks after the books in a library and helps people find them;
chef | cooks meals in a restaurant;
gardener | looks after plants and gardens;
mechanic | repairs cars and other machines;
dentist | looks after people's teeth;
fisherman | catches fish;
tailor | makes and mends clothes;
painter | paints pictures or the walls of buildings;
musician | plays music;
veterinarian | treats sick and injured animals;
astronaut | travels into space;
plumber | fixes water pipes and taps;
architect | designs buildings;
scientist | studies the world by doing experiments;
postman | delivers letters and parcels;
shopkeeper | runs a shop and sells goods;
builder | puts up houses and other buildings;
photographer | takes photographs;
journalist | writes news stories;
potter | makes bowls and cups out of clay;
beekeeper | looks after bees and collects their honey;
engineer | designs machines, roads and bridges
""", 2)
HOBBIES = _items("""
painting, drawing, reading, swimming, running, cycling, dancing, singing, fishing, gardening, cooking,
baking, knitting, hiking, climbing, skating, chess, photography, playing the piano, playing the guitar,
writing poems, collecting stamps, watching birds, building model ships, camping, sailing, football,
basketball, tennis, table tennis, juggling, origami, pottery, yoga, skiing, rowing
""")
INSTRUMENTS = _items("piano, guitar, violin, flute, drum, trumpet, cello, harp, clarinet, accordion, banjo")
CLOTHES = _items("hat, scarf, coat, jacket, sweater, dress, shirt, pair of boots, pair of shoes, cap, "
                 "raincoat, pair of gloves, belt, skirt, pair of socks, apron, cloak, vest")
VEHICLES = _items("bus, train, bicycle, car, boat, ferry, tram, truck, scooter, plane, van, taxi")
SUBJECTS = _items("mathematics, history, geography, science, music, art, reading, writing, biology, chemistry, "
                  "physics, astronomy")
MATERIALS = _items("wood, stone, glass, paper, clay, wool, cotton, silk, iron, silver, gold, leather, brick")

# -----------------------------------------------------------------------------
# Describing words

# Adjectives for things and places ("a dusty lamp", "a quiet street").
ADJECTIVES = _items("""
old, new, small, big, tiny, huge, bright, dark, quiet, loud, soft, hard, warm, cold, shiny, dusty, clean,
heavy, light, round, square, long, short, tall, narrow, wide, deep, strange, beautiful, ugly, plain,
fancy, simple, colorful, pale, golden, silver, wooden, broken, fragile, sturdy, ancient, modern, smooth,
rough, tidy, messy, lovely, lonely, busy, empty, secret, hidden, famous, ordinary, peculiar, precious,
cozy, chilly, sunny, windy, foggy, muddy, sandy, rusty, glowing, sparkling, faded, crooked, striped,
spotted, enormous, little, lucky, magic, noisy, polished, slippery, sticky, dry, wet, gloomy, cheerful
""")
# Character traits for people and animals ("a brave fox", "a patient teacher").
TRAITS = _items("""
brave, clever, careful, friendly, grumpy, honest, kind, patient, polite, shy, silly, wise, gentle, eager,
calm, curious, proud, cheerful, lazy, playful, quiet, noisy, clumsy, generous, stubborn, cheeky, bold,
cautious, chatty, sleepy, hungry, young, old, little, fearless, thoughtful, helpful, lively, mischievous
""")
FEELINGS = _items("""
happy, sad, excited, nervous, proud, tired, hungry, curious, surprised, worried, calm, angry, lonely,
grateful, hopeful, scared, bored, relieved, confused, delighted, embarrassed, jealous, cheerful, sleepy,
brave, shy, thrilled, puzzled, content, restless
""")
# How a view looks ("The valley looked {view} in the evening light").
VIEWS = _items("beautiful, calm, golden, quiet, gloomy, peaceful, strange, magical, pale, bright, silver, misty, "
               "lovely, endless, still, wild, grey, green, enormous")
WEATHER = _items("""
sunny, rainy, windy, cloudy, foggy, snowy, stormy, misty, bright, chilly, warm, hot, cold, frosty, grey
""")
COLORS = _items("red, orange, yellow, green, blue, purple, pink, brown, black, white, grey, gold, silver")
ADVERBS = _items("""
slowly, quickly, quietly, loudly, carefully, happily, sadly, gently, suddenly, finally, eagerly, softly,
proudly, nervously, bravely, calmly, patiently, politely, cheerfully, silently, angrily, kindly, boldly,
lazily, neatly, warmly, wisely, curiously, anxiously, gladly
""")
# (base, past) forms of things one does to an object, chosen to make sense in every frame that uses them
# ("It took him two hours to {act} all the {objects}", "Can you help me {act} this {object}?").
ACTIONS = _rows("""
find | found; carry | carried; paint | painted; fix | fixed; clean | cleaned; wash | washed;
draw | drew; hide | hid; buy | bought; sell | sold; bring | brought; wrap | wrapped; polish | polished;
borrow | borrowed; share | shared; measure | measured; count | counted; examine | examined;
sketch | sketched; repair | repaired; lift | lifted; move | moved; mend | mended; decorate | decorated;
deliver | delivered; check | checked; weigh | weighed; pack | packed; sort | sorted; collect | collected;
label | labeled; dust | dusted; arrange | arranged; photograph | photographed; return | returned
""", 2)
# Intransitive activities, (base, past).
ACTIVITIES = _rows("""
laugh | laughed; sing | sang; dance | danced; sleep | slept; wait | waited; listen | listened;
smile | smiled; rest | rested; read | read; play | played; work | worked; cook | cooked; swim | swam;
climb | climbed; run | ran; jump | jumped; whistle | whistled; think | thought; write | wrote;
study | studied; practice | practiced; paint | painted; hum | hummed; shiver | shivered; sigh | sighed;
wander | wandered; explore | explored; dream | dreamed; look around | looked around; sit down | sat down
""", 2)
MOVES = _items("""
walked, ran, hurried, wandered, cycled, drove, strolled, rushed, raced, marched, skipped, went,
headed, set off, crept, dashed, travelled, rode, jogged
""")
SAY = _items("""
said, asked, replied, whispered, shouted, called, answered, laughed, explained, added, cried, muttered,
announced, admitted, suggested, promised, exclaimed, agreed, sighed, began
""")
GREETINGS = _items("Hello, Hi, Good morning, Good afternoon, Good evening, Hey there, Welcome back, Hi there")

# -----------------------------------------------------------------------------
# World facts. Each table is (key, value, ...) rows; grammar.py phrases them many ways.

# country | capital | continent | main language | currency
COUNTRIES = _rows("""
France | Paris | Europe | French | euro;
Germany | Berlin | Europe | German | euro;
Italy | Rome | Europe | Italian | euro;
Spain | Madrid | Europe | Spanish | euro;
Portugal | Lisbon | Europe | Portuguese | euro;
the United Kingdom | London | Europe | English | pound sterling;
Ireland | Dublin | Europe | - | euro;
the Netherlands | Amsterdam | Europe | Dutch | euro;
Belgium | Brussels | Europe | - | euro;
Austria | Vienna | Europe | German | euro;
Poland | Warsaw | Europe | Polish | zloty;
Sweden | Stockholm | Europe | Swedish | Swedish krona;
Norway | Oslo | Europe | Norwegian | Norwegian krone;
Denmark | Copenhagen | Europe | Danish | Danish krone;
Finland | Helsinki | Europe | - | euro;
Iceland | Reykjavik | Europe | Icelandic | Icelandic krona;
Greece | Athens | Europe | Greek | euro;
Hungary | Budapest | Europe | Hungarian | forint;
the Czech Republic | Prague | Europe | Czech | koruna;
Romania | Bucharest | Europe | Romanian | leu;
Ukraine | Kyiv | Europe | Ukrainian | hryvnia;
Egypt | Cairo | Africa | Arabic | Egyptian pound;
Nigeria | Abuja | Africa | - | naira;
Kenya | Nairobi | Africa | - | Kenyan shilling;
Ethiopia | Addis Ababa | Africa | - | birr;
Morocco | Rabat | Africa | - | dirham;
Ghana | Accra | Africa | - | cedi;
Senegal | Dakar | Africa | - | -;
Algeria | Algiers | Africa | Arabic | Algerian dinar;
Japan | Tokyo | Asia | Japanese | yen;
China | Beijing | Asia | Chinese | yuan;
India | New Delhi | Asia | - | Indian rupee;
South Korea | Seoul | Asia | Korean | won;
Thailand | Bangkok | Asia | Thai | baht;
Vietnam | Hanoi | Asia | Vietnamese | dong;
the Philippines | Manila | Asia | - | Philippine peso;
Pakistan | Islamabad | Asia | - | Pakistani rupee;
Bangladesh | Dhaka | Asia | Bengali | taka;
Nepal | Kathmandu | Asia | Nepali | Nepalese rupee;
Saudi Arabia | Riyadh | Asia | Arabic | Saudi riyal;
Iran | Tehran | Asia | Persian | Iranian rial;
Mongolia | Ulaanbaatar | Asia | Mongolian | tugrik;
the United States | Washington, D.C. | North America | English | US dollar;
Canada | Ottawa | North America | - | Canadian dollar;
Mexico | Mexico City | North America | Spanish | Mexican peso;
Cuba | Havana | North America | Spanish | Cuban peso;
Brazil | Brasilia | South America | Portuguese | real;
Argentina | Buenos Aires | South America | Spanish | Argentine peso;
Chile | Santiago | South America | Spanish | Chilean peso;
Peru | Lima | South America | Spanish | sol;
Colombia | Bogota | South America | Spanish | Colombian peso;
Venezuela | Caracas | South America | Spanish | bolivar;
Australia | Canberra | Oceania | English | Australian dollar;
New Zealand | Wellington | Oceania | - | New Zealand dollar;
Fiji | Suva | Oceania | - | Fijian dollar
""", 5)
CONTINENTS = _items("Africa, Antarctica, Asia, Europe, North America, Oceania, South America")

# animal | class | what it eats | where it lives | diet type | sound it makes | legs
ANIMALS = _rows("""
cow | mammal | grass and hay | on farms and in fields | herbivore | moos | 4;
horse | mammal | grass, hay and oats | on farms and in open grassland | herbivore | neighs | 4;
sheep | mammal | grass | on farms and on hillsides | herbivore | bleats | 4;
goat | mammal | grass, leaves and shrubs | on farms and in the mountains | herbivore | bleats | 4;
pig | mammal | almost anything, from roots to scraps | on farms | omnivore | grunts | 4;
chicken | bird | seeds, grain and insects | on farms | omnivore | clucks | 2;
duck | bird | water plants, insects and small fish | on ponds, lakes and rivers | omnivore | quacks | 2;
dog | mammal | dog food, meat and some vegetables | in homes with people | - | barks | 4;
cat | mammal | meat and fish | in homes with people | carnivore | meows | 4;
rabbit | mammal | grass, clover and vegetables | in burrows in fields and meadows | herbivore | - | 4;
mouse | mammal | seeds, grain and insects | in fields, woods and houses | omnivore | squeaks | 4;
lion | mammal | meat, such as zebras and antelopes | on the grasslands of Africa | carnivore | roars | 4;
tiger | mammal | meat, such as deer and wild pigs | in the forests of Asia | carnivore | roars | 4;
elephant | mammal | grass, leaves, bark and fruit | in the savannas and forests of Africa and Asia |
 herbivore | trumpets | 4;
giraffe | mammal | leaves from tall trees | on the savannas of Africa | herbivore | - | 4;
zebra | mammal | grass | on the grasslands of Africa | herbivore | - | 4;
monkey | mammal | fruit, leaves and insects | in tropical forests | omnivore | chatters | -;
gorilla | mammal | leaves, stems and fruit | in the forests of central Africa | - | - | -;
brown bear | mammal | berries, roots, fish and small animals | in forests and mountains | omnivore | growls | 4;
polar bear | mammal | seals | on the sea ice of the Arctic | carnivore | - | 4;
giant panda | mammal | bamboo | in the mountain forests of China | - | - | 4;
kangaroo | mammal | grass and leaves | in Australia | herbivore | - | -;
koala | mammal | eucalyptus leaves | in the eucalyptus forests of Australia | herbivore | - | 4;
wolf | mammal | meat, such as deer and rabbits | in forests, mountains and tundra | carnivore | howls | 4;
fox | mammal | small animals, insects and berries | in forests, fields and even towns | omnivore | barks | 4;
deer | mammal | grass, leaves and twigs | in forests and meadows | herbivore | - | 4;
squirrel | mammal | nuts, seeds and fruit | in trees in forests and parks | - | chatters | 4;
blue whale | mammal | krill, which are tiny shrimp-like animals | in the oceans | - | - | 0;
dolphin | mammal | fish and squid | in the oceans | carnivore | clicks and whistles | 0;
seal | mammal | fish | along cold coasts and in cold seas | carnivore | - | 0;
camel | mammal | desert plants, grass and leaves | in deserts | herbivore | - | 4;
hippopotamus | mammal | grass | in and near the rivers of Africa | herbivore | grunts | 4;
eagle | bird | fish and small animals | in mountains, forests and near water | carnivore | screeches | 2;
owl | bird | mice, insects and other small animals | in forests and barns | carnivore | hoots | 2;
penguin | bird | fish, squid and krill | in the Southern Hemisphere, many of them near Antarctica |
 carnivore | squawks | 2;
parrot | bird | seeds, nuts and fruit | in tropical forests | - | squawks | 2;
ostrich | bird | plants, seeds and insects | on the savannas of Africa | omnivore | booms | 2;
crow | bird | almost anything, from seeds to insects | in fields, forests and cities | omnivore | caws | 2;
swan | bird | water plants | on lakes and rivers | - | hisses | 2;
frog | amphibian | insects and worms | in ponds and wetlands | carnivore | croaks | 4;
snake | reptile | mice, eggs and other small animals | in forests, deserts and grasslands | carnivore | hisses | 0;
crocodile | reptile | fish, birds and other animals | in rivers and swamps in warm places | carnivore | - | 4;
tortoise | reptile | grass, leaves and flowers | on land, in warm dry places | herbivore | - | 4;
shark | fish | fish and seals | in the oceans | carnivore | - | 0;
salmon | fish | insects, shrimp and small fish | in rivers and in the sea | carnivore | - | 0;
octopus | mollusc | crabs and shellfish | in the oceans | carnivore | - | -;
crab | crustacean | small animals and bits of plants | on the seashore and in the sea | omnivore | - | 10;
bee | insect | nectar and pollen from flowers | in hives and nests | - | buzzes | 6;
ant | insect | seeds, sweet things and small insects | in colonies, often underground | - | - | 6;
butterfly | insect | nectar from flowers | in gardens and meadows | - | - | 6;
spider | arachnid | insects caught in its web | almost everywhere, from houses to forests | carnivore | - | 8;
snail | mollusc | leaves and plants | in gardens and damp places | herbivore | - | 0
""", 7)

# thing | its usual color (only things whose color is not in doubt)
THING_COLORS = _rows("""
the sky on a clear day | blue; grass | green; snow | white; coal | black; a ripe banana | yellow;
a ripe tomato | red; a carrot | orange; a lemon | yellow; a ripe strawberry | red; milk | white;
a pumpkin | orange; a lime | green; an eggplant | purple; chocolate | brown; a fire truck | red;
a polar bear's fur | white; a crow | black; the leaves of most trees in summer | green;
a school bus in the United States | yellow; a ripe cherry | red; a flamingo | pink; a plum | purple;
the inside of a kiwi fruit | green; a peacock's tail | blue and green; a walnut shell | brown
""", 2)

# planet | order from the sun | kind | a notable fact (completes "It ...")
PLANETS = _rows("""
Mercury | 1 | a rocky planet | is the smallest planet and the closest to the Sun;
Venus | 2 | a rocky planet | is the hottest planet, because its thick clouds trap heat;
Earth | 3 | a rocky planet | is the only planet known to have life, and it has one moon;
Mars | 4 | a rocky planet | is called the Red Planet because of its rusty red dust, and it has two small moons;
Jupiter | 5 | a gas giant | is the largest planet in the solar system;
Saturn | 6 | a gas giant | is famous for its wide, bright rings;
Uranus | 7 | an ice giant | spins on its side, tipped over compared with the other planets;
Neptune | 8 | an ice giant | is the farthest planet from the Sun
""", 4)
ORDINALS = _items("zeroth, first, second, third, fourth, fifth, sixth, seventh, eighth, ninth, tenth, eleventh, "
                  "twelfth")

DAYS = _items("Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday")
# month | days (February: 28, or 29 in a leap year)
MONTHS = _rows("""
January | 31; February | 28; March | 31; April | 30; May | 31; June | 30; July | 31; August | 31;
September | 30; October | 31; November | 30; December | 31
""", 2)
SEASONS = _items("spring, summer, autumn, winter")

# shape | number of sides
SHAPES = _rows("triangle | 3; square | 4; rectangle | 4; pentagon | 5; hexagon | 6; octagon | 8", 2)

# Free-standing science and everyday facts: (question, short answer, several statements of the fact).
SCIENCE = (
    ("At what temperature does water boil?", "At sea level, water boils at 100 degrees Celsius (212 degrees "
     "Fahrenheit).", ("Water boils at 100 degrees Celsius at sea level.", "At sea level, water turns to steam "
     "at 100 degrees Celsius, which is 212 degrees Fahrenheit.", "The boiling point of water at sea level is "
     "100 degrees Celsius.")),
    ("At what temperature does water freeze?", "Water freezes at 0 degrees Celsius (32 degrees Fahrenheit).",
     ("Water freezes at 0 degrees Celsius.", "When water cools to 0 degrees Celsius, or 32 degrees Fahrenheit, "
      "it turns to ice.", "The freezing point of water is 0 degrees Celsius.")),
    ("What is water made of?", "Each molecule of water is made of two hydrogen atoms and one oxygen atom, which "
     "is why it is written H2O.", ("Water is made of hydrogen and oxygen.", "A water molecule has two hydrogen "
     "atoms and one oxygen atom, so chemists write it as H2O.")),
    ("How do plants make their food?", "Plants make their food from sunlight, water and carbon dioxide. This "
     "is called photosynthesis, and it releases oxygen.", ("Plants use sunlight, water and carbon dioxide to "
     "make their own food, a process called photosynthesis.", "During photosynthesis, green leaves capture "
     "sunlight and give off oxygen.")),
    ("What gas do people breathe in to live?", "People need oxygen. We breathe in oxygen and breathe out "
     "carbon dioxide.", ("People breathe in oxygen and breathe out carbon dioxide.", "Our lungs take oxygen "
     "from the air and pass it into the blood.")),
    ("What does the heart do?", "The heart pumps blood around the body.", ("The heart is a muscle that pumps "
     "blood around the body.", "Every beat of the heart pushes blood through the blood vessels.")),
    ("How many bones does an adult human have?", "An adult human has 206 bones.", ("An adult human skeleton "
     "has 206 bones.", "Babies are born with more bones than adults, because some bones join together as they "
     "grow; an adult has 206.")),
    ("How fast does light travel?", "Light travels at about 300,000 kilometers per second.", ("Light travels "
     "at about 300,000 kilometers every second.", "Nothing travels faster than light, which covers about "
     "300,000 kilometers in one second.")),
    ("What is the Sun?", "The Sun is a star. It is the closest star to Earth.", ("The Sun is a star, the "
     "closest one to Earth.", "Our Sun is an ordinary star, a huge ball of hot gas.")),
    ("How long does it take the Earth to go around the Sun?", "About 365 days, which is one year.",
     ("The Earth takes about 365 days to travel once around the Sun.", "One trip of the Earth around the Sun "
      "takes a year, about 365 days.")),
    ("Why do we have day and night?", "Because the Earth spins. It turns once about every 24 hours, so each "
     "place faces the Sun for part of the day and faces away for the rest.", ("The Earth spins once about "
     "every 24 hours, which gives us day and night.", "Day and night happen because the Earth turns, so the "
     "Sun seems to rise and set.")),
    ("What does a magnet attract?", "Magnets attract iron and some other metals, such as nickel.",
     ("A magnet pulls on things made of iron.", "Magnets attract iron, but not wood, glass or plastic.")),
    ("What is the largest ocean?", "The Pacific Ocean is the largest ocean on Earth.", ("The Pacific is the "
     "largest and deepest ocean on Earth.", "Of all the oceans, the Pacific is the biggest.")),
    ("What is the tallest mountain in the world?", "Mount Everest, in the Himalayas, is the tallest mountain "
     "above sea level.", ("Mount Everest is the tallest mountain above sea level.", "The highest peak on "
     "Earth is Mount Everest, on the border of Nepal and China.")),
    ("What is the largest planet?", "Jupiter is the largest planet in the solar system.", ("Jupiter is the "
     "largest planet in the solar system.", "Jupiter is so big that all the other planets could fit inside "
     "it.")),
    ("How many planets are in the solar system?", "There are eight planets in the solar system.", ("The solar "
     "system has eight planets.", "Eight planets travel around the Sun.")),
    ("How many continents are there?", "There are seven continents: Africa, Antarctica, Asia, Europe, North "
     "America, Oceania and South America.", ("There are seven continents on Earth.", "Asia is the largest of "
     "the seven continents.")),
    ("What is ice?", "Ice is frozen water.", ("Ice is simply water that has frozen.", "When ice melts, it "
     "turns back into liquid water.")),
    ("What do bees make?", "Bees make honey from the nectar of flowers.", ("Bees turn the nectar of flowers "
     "into honey.", "Honey is made by bees and stored in their hives.")),
    ("Does sound travel faster in water or in air?", "Sound travels faster in water than in air.", ("Sound "
     "moves faster through water than through air.",)),
)

# What nanochat knows about itself. Every identity answer says "nanochat".
IDENTITY_QA = (
    ("Who are you?", "I'm nanochat, a small language model. I was built by my users, the people who trained "
     "me. I can answer simple questions, do arithmetic and tell short stories."),
    ("What is your name?", "My name is nanochat."),
    ("What's your name?", "I'm called nanochat."),
    ("Who made you?", "I was built by my users: the people who run my training code made me, step by step. "
     "I'm nanochat."),
    ("Who created you?", "I'm nanochat, and I was created by my users, who trained me from scratch."),
    ("Are you a person?", "No. I'm nanochat, a small language model. I'm a computer program, not a person."),
    ("Are you human?", "No, I'm not human. I'm nanochat, a language model that learned from text."),
    ("What are you?", "I'm nanochat, a small language model. I predict text one piece at a time."),
    ("What can you do?", "I'm nanochat. I can answer simple questions, do arithmetic, explain words and tell "
     "short stories or poems. I'm small, so I sometimes make mistakes."),
    ("Are you ChatGPT?", "No, I'm nanochat, a small language model built by my users."),
    ("Can you browse the internet?", "No. I'm nanochat, and I can't browse the internet. I only know what I "
     "learned during training."),
    ("How were you trained?", "I'm nanochat. I was trained from scratch on text, first to predict the next "
     "word and then to hold conversations. My users ran the training."),
    ("Do you make mistakes?", "Yes. I'm nanochat, a small model, so I can get things wrong. Please check "
     "anything important."),
    ("Tell me about yourself.", "I'm nanochat, a small language model built by my users. I like answering "
     "questions and I can use a calculator for arithmetic."),
)
IDENTITY_STATEMENTS = (
    "nanochat is a small language model built by its users.",
    "The assistant called nanochat was trained from scratch by the people who use it.",
    "nanochat is a computer program, not a person; it answers questions and tells short stories.",
    "When asked who made it, nanochat says that it was built by its users.",
    "nanochat is small, so it sometimes makes mistakes, and it cannot browse the internet.",
    "nanochat can use a calculator to do arithmetic.",
)

# Advice topics: (request phrases, tips). Answers pick a few tips in random order.
ADVICE = (
    (("How can I sleep better?", "I have trouble sleeping. Any tips?"), (
        "go to bed and get up at the same time every day", "keep your bedroom dark, quiet and cool",
        "avoid screens for an hour before bed", "skip coffee and tea in the afternoon",
        "get some daylight and exercise during the day", "write down your worries before you lie down")),
    (("How can I study more effectively?", "What is a good way to study for a test?"), (
        "study in short sessions with small breaks in between", "test yourself instead of only rereading",
        "explain the topic out loud as if teaching a friend", "start early instead of cramming the night before",
        "put your phone in another room", "get a good night's sleep before the test")),
    (("How can I save money?", "Do you have tips for saving money?"), (
        "write down everything you spend for a month", "set aside a fixed amount as soon as you are paid",
        "cook at home more often", "wait a day before buying anything you don't need",
        "compare prices before a big purchase", "cancel subscriptions you no longer use")),
    (("How can I make new friends?", "I just moved to a new town. How do I meet people?"), (
        "join a club or class about something you enjoy", "say yes to invitations, even small ones",
        "ask people questions and listen to the answers", "volunteer for a local cause",
        "invite someone for a walk or a coffee", "be patient, because friendships take time")),
    (("How can I stay healthy?", "What are some simple healthy habits?"), (
        "eat plenty of vegetables and fruit", "drink water through the day", "walk or move for at least "
        "half an hour a day", "get enough sleep", "spend time with people you like", "wash your hands often")),
    (("How do I stay calm when I'm stressed?", "I feel stressed. What can I do?"), (
        "take a few slow, deep breaths", "go for a short walk outside", "break a big task into small steps",
        "talk to someone you trust", "write down what is worrying you", "take a break and come back later")),
    (("How do I start learning to cook?", "Any tips for a beginner cook?"), (
        "start with simple dishes like soup, pasta or eggs", "read the whole recipe before you begin",
        "prepare and measure everything first", "taste as you go", "keep your knives sharp and your kitchen "
        "tidy", "cook the same dish a few times until you know it well")),
    (("How can I learn a new language?", "What's the best way to learn a language?"), (
        "practice a little every day", "learn the most common words first", "listen to songs and shows in "
        "the language", "speak with native speakers, even if you make mistakes", "keep a notebook of new "
        "words", "read simple books for children")),
)

# Rhyming line endings for short poems: a poem line is a clause + one ending, and the endings in one
# group rhyme with each other.
RHYMES = (
    _items("in the morning light, through the quiet night, till the stars are bright, in plain sight, like a kite"),
    _items("beside the sea, beneath the tree, where the wind is free, like a humming bee, for you and me"),
    _items("at the end of the day, far away, along the way, where the children play, when the sky turns gray"),
    _items("across the sky, way up high, as the birds fly by, with a gentle sigh"),
    _items("in the falling rain, down the lane, across the plain, home again, on the evening train"),
    _items("beneath the moon, like a quiet tune, by the afternoon, in the heat of June, across the dune"),
    _items("in the snow, with a golden glow, long ago, in the valley below, where the rivers go"),
    _items("in the sun, when the day is done, one by one, just for fun, as the rivers run"),
    _items("upon the hill, by the mill, in the winter chill, on the windowsill"),
    _items("like a simple song, all day long, as we walk along, all night long"),
    _items("like a distant star, from near and far, wherever you are, in a glass jar"),
)

# How-to guides: (task, steps in order). Steps are imperative and complete "First, ..." / "1. ...".
HOWTO = (
    ("make a cup of tea", ("fill the kettle with fresh water and bring it to the boil", "warm the cup with a "
     "splash of hot water", "put a tea bag in the cup", "pour the boiling water over the tea bag", "let it "
     "steep for three to five minutes", "take out the tea bag and add milk or honey if you like")),
    ("plant a seed", ("fill a small pot with soil", "push the seed into the soil about as deep as the seed "
     "is long", "cover it gently and press the soil down", "water it until the soil is damp but not soaked",
     "put the pot somewhere warm and bright", "keep the soil damp and wait for a shoot to appear")),
    ("wash your hands properly", ("wet your hands with clean running water", "rub soap over both hands",
     "scrub the backs of your hands, between your fingers and under your nails", "keep scrubbing for about "
     "twenty seconds", "rinse off all the soap", "dry your hands with a clean towel")),
    ("make a paper airplane", ("take a rectangular sheet of paper", "fold it in half the long way and open "
     "it again", "fold the two top corners down to the middle crease", "fold the new slanted edges to the "
     "middle once more", "fold the plane in half along the first crease", "fold each side down to make the "
     "wings", "hold it near the front and throw it gently forward")),
    ("fix a flat bicycle tire", ("take the wheel off the bicycle", "use tire levers to lift one side of the "
     "tire off the rim", "pull out the inner tube", "find the hole by pumping a little air in and listening "
     "for a hiss", "patch the hole or use a new tube", "put the tube back, tuck the tire onto the rim and "
     "pump it up")),
    ("make a sandwich", ("take two slices of bread", "spread butter or sauce on one side of each slice",
     "lay cheese, vegetables or other fillings on one slice", "put the second slice on top", "cut the "
     "sandwich in half so it is easier to eat")),
    ("pack for a weekend trip", ("check the weather where you are going", "make a list of what you need",
     "pack clothes for each day plus one spare set", "add your toothbrush, toothpaste and any medicine",
     "put heavy things at the bottom of the bag", "keep your tickets and keys where you can reach them")),
    ("clean your room", ("open a window to let in fresh air", "put away anything that is on the floor",
     "make the bed", "dust the shelves and the desk", "sweep or vacuum the floor", "take out the rubbish")),
    ("bake simple bread", ("mix flour, yeast, salt and warm water in a large bowl", "knead the dough for ten "
     "minutes until it is smooth", "cover the bowl and let the dough rise for an hour", "shape the dough "
     "into a loaf and put it in a tin", "let it rise again for half an hour", "bake it in a hot oven until "
     "it sounds hollow when you tap the bottom")),
    ("build a birdhouse", ("cut six pieces of wood for the floor, the walls and the roof", "drill a round "
     "hole in the front piece for the door", "nail the walls to the floor", "fix the roof on top so that it "
     "hangs over the door", "drill a few small holes in the floor so rain can drain", "hang the birdhouse "
     "high on a tree, away from cats")),
)
LESSONS = _items("""
friends matter more than treasure, patience pays off, it is fine to ask for help, small kindnesses matter,
being brave does not mean never being afraid, practice makes hard things easier, the best adventures can
start close to home, honesty is always the best choice, sharing makes good things better,
listening is as important as talking, every mistake teaches something
""")
CONTESTS = _items("""
baking contest, bicycle race, singing contest, chess tournament, kite festival, painting competition,
spelling bee, swimming race, talent show, pumpkin fair, sandcastle contest, science fair
""")


# -----------------------------------------------------------------------------
# Phrasings. Templates are str.format strings; grammar.py fills their slots: fields of a fact row
# ({country}, {capital}), words invented from the banks above ({adj}, {object}, {name}), `{a_x}` for x with
# its article and `{X}` for x capitalised.

class Phrasing(NamedTuple):
    """How one aspect of a fact is talked about."""
    statements: tuple  # ways a document states it
    qa: tuple  # ((questions), (answers)) pairs; any answer fits any question of its pair. The first pair
    #            asks for the aspect itself, so "What about Japan?" can reuse it for another row.
    follow: str | None = None  # a follow-up asking for this aspect of the subject just discussed


FACTS = {  # topic -> aspect (a field of the topic's rows) -> Phrasing
    "country": {
        "capital": Phrasing(
            ("The capital of {country} is {capital}.", "{Capital} is the capital of {country}.",
             "{Capital} is the capital city of {country}.", "{Country}'s capital city is {capital}.",
             "The government of {country} sits in {capital}, the capital.",
             "Many visitors to {country} begin their trip in {capital}, the capital."),
            ((("What is the capital of {country}?", "Which city is the capital of {country}?",
               "What's the capital city of {country}?", "Name the capital of {country}.",
               "Do you know the capital of {country}?"),
              ("The capital of {country} is {capital}.", "{Capital} is the capital of {country}.", "{Capital}.",
               "It's {capital}.")),
             (("{Capital} is the capital of which country?", "Which country has {capital} as its capital?"),
              ("{Capital} is the capital of {country}.", "{Country}."))),
            "And what is its capital?"),
        "continent": Phrasing(
            ("{Country} is in {continent}.", "{Country} is a country in {continent}.", "{Country} lies in "
             "{continent}.", "On a map, you will find {country} in {continent}."),
            ((("Which continent is {country} in?", "On what continent is {country}?", "Where is {country}?"),
              ("{Country} is in {continent}.", "It is in {continent}.", "{Country} is a country in {continent}.")),),
            "Which continent is it in?"),
        "language": Phrasing(
            ("Most people in {country} speak {language}.", "The main language of {country} is {language}.",
             "In {country}, people mostly speak {language}."),
            ((("What language do people speak in {country}?", "What is the main language of {country}?"),
              ("Most people in {country} speak {language}.", "The main language of {country} is {language}.")),),
            "What language do people speak there?"),
        "currency": Phrasing(
            ("The currency of {country} is the {currency}.", "In {country}, people pay with the {currency}.",
             "{Country} uses the {currency} as its money."),
            ((("What currency does {country} use?", "What money do people use in {country}?"),
              ("{Country} uses the {currency}.", "The currency of {country} is the {currency}.")),),
            "What currency do they use there?"),
    },
    "animal": {
        "food": Phrasing(
            ("{Animals} eat {food}.", "{A_animal} eats {food}.", "{A_animal} feeds on {food}.",
             "As for food, {animals} eat {food}."),
            ((("What do {animals} eat?", "What does {a_animal} eat?", "What is the diet of {a_animal}?"),
              ("{Animals} eat {food}.", "{A_animal} eats {food}.")),),
            "What do they eat?"),
        "home": Phrasing(
            ("{Animals} live {home}.", "{A_animal} lives {home}.", "You can find {animals} {home}."),
            ((("Where do {animals} live?", "Where does {a_animal} live?", "Where can I find {animals}?"),
              ("{Animals} live {home}.", "{A_animal} lives {home}.", "You can find them {home}.")),),
            "Where do they live?"),
        "cls": Phrasing(
            ("{A_animal} is {a_cls}.", "{Animals} are {clss}.", "Scientists group {animals} with the {clss}."),
            ((("What kind of animal is {a_animal}?", "Is {a_animal} a mammal, a bird or something else?"),
              ("{A_animal} is {a_cls}.", "{Animals} are {clss}.")),),
            "What kind of animal is it?"),
        "diet": Phrasing(
            ("{A_animal} is {a_diet}, which means it eats {diet_meaning}.", "{Animals} are {diet}s.",
             "Because {animals} eat {diet_meaning}, they are called {diet}s."),
            ((("Is {a_animal} a herbivore, a carnivore or an omnivore?", "Are {animals} herbivores or carnivores?"),
              ("{A_animal} is {a_diet}: it eats {diet_meaning}.", "{Animals} are {diet}s.")),),
            "Is it a herbivore, a carnivore or an omnivore?"),
        "sound": Phrasing(
            ("{A_animal} {sound}.", "If you listen closely, you may hear {a_animal} as it {sound}."),
            ((("What sound does {a_animal} make?", "What noise do {animals} make?"), ("{A_animal} {sound}.",
                                                                                    "It {sound}.")),),
            "What sound does it make?"),
        "legs": Phrasing(
            ("{A_animal} has {legs} legs.", "Count them: {a_animal} has {legs} legs."),
            ((("How many legs does {a_animal} have?", "How many legs do {animals} have?"),
              ("{A_animal} has {legs} legs.", "It has {legs} legs.")),),
            "How many legs does it have?"),
    },
    "color": {
        "color": Phrasing(
            ("{Thing} is {color}.", "The color of {thing} is {color}.", "{Thing} is usually {color}."),
            ((("What color is {thing}?", "What is the color of {thing}?"), ("{Thing} is {color}.", "It is {color}.",
                                                                          "{Color}.")),)),
    },
    "planet": {
        "order": Phrasing(
            ("{Planet} is the {order} planet from the Sun.", "Counting out from the Sun, {planet} comes {order}."),
            ((("Which planet is the {order} from the Sun?",), ("{Planet} is the {order} planet from the Sun.",
                                                                "{Planet}.")),
             (("Where is {planet} in the order of the planets?",), ("{Planet} is the {order} planet from the Sun.",)))),
        "kind": Phrasing(
            ("{Planet} is {kind}.", "Astronomers describe {planet} as {kind}."),
            ((("What kind of planet is {planet}?",), ("{Planet} is {kind}.",)),), "What kind of planet is it?"),
        "note": Phrasing(
            ("{Planet} {note}.",), ((("Tell me a fact about {planet}.", "What is special about {planet}?"),
                                     ("{Planet} {note}.",)),), "Tell me something interesting about it."),
        "next": Phrasing(
            ("After {planet} comes {next}.",), ((("Which planet comes after {planet}?",),
                                                 ("{Next} comes after {planet}.",)),), "Which planet comes after it?"),
    },
    "calendar": {
        "day": Phrasing(
            ("{Next} comes after {day}.", "The day after {day} is {next}.", "The day before {day} is {prev}."),
            ((("What day comes after {day}?", "What is the day after {day}?"), ("{Next} comes after {day}.",
                                                                               "The day after {day} is {next}.")),
             (("What day comes before {day}?",), ("The day before {day} is {prev}.", "{Prev}.")))),
        "month": Phrasing(
            ("{Month} has {days}.", "{Month} is the {order} month of the year.", "After {month} comes {next}."),
            ((("How many days are in {month}?", "How many days does {month} have?"), ("{Month} has {days}.",)),
             (("What is the {order} month of the year?",), ("The {order} month is {month}.", "{Month}.")),
             (("Which month comes after {month}?",), ("{Next} comes after {month}.", "{Next}.")))),
    },
    "shape": {
        "sides": Phrasing(
            ("{A_shape} has {sides} sides.", "Every {shape} has {sides} sides."),
            ((("How many sides does {a_shape} have?",), ("{A_shape} has {sides} sides.", "{Sides}.")),)),
    },
    "thing": {
        "thing": Phrasing(
            ("{A_thing} is {a_cat} {purpose}.", "We call {a_cat} {purpose} {a_thing}."),
            ((("What is {a_thing}?", "Can you define \"{thing}\"?", "What does the word \"{thing}\" mean?"),
              ("{A_thing} is {a_cat} {purpose}.",)),)),
    },
    "job": {
        "job": Phrasing(
            ("{A_job} is a person who {does}.", "The job of {a_job} is easy to explain: {a_job} {does}."),
            ((("What does {a_job} do?", "What is {a_job}?"), ("{A_job} is a person who {does}.", "{A_job} {does}.")),)),
    },
}
# How a follow-up names another row of a topic ("What about Japan?", "What about a hexagon?"); topics not
# listed (calendar) use the aspect's own field ({day} or {month}).
FOLLOW_UP_NAMES = {"country": "{country}", "animal": "{animals}", "color": "{thing}", "planet": "{planet}",
                   "shape": "{a_shape}", "thing": "{a_thing}", "job": "{a_job}"}
# Extra sentences for encyclopedia-style articles, true of every row of their topic.
ARTICLE_FILLER = {
    "country": ("Like every country, {country} has its own history, food and music.", "People travel to "
                "{country} for many reasons.", "Every map of {continent} shows {country}."),
    "animal": ("Like all living things, {animals} need water to survive.", "Some people enjoy watching "
               "{animals} in the wild or at a zoo.", "There is still a lot to learn about {animals}."),
    "planet": ("Like the other planets, {planet} travels around the Sun.", "Astronomers have studied {planet} "
               "with telescopes and space probes."),
}


# -----------------------------------------------------------------------------
# Story frames. A story is one arc (setup, middle, resolution) padded with events, descriptions and
# dialogue about one hero ({name}, {he}, {him}, {his}) and one friend ({friend}, {fhe}, {fhim}, {fhis}).

OPENINGS = (
    "Once upon a time, in the {adj} town of {town}, there lived {a_kind} named {name}.",
    "There was once {a_kind} called {name} who lived near {place}.", "{Name} was {a_kind} from {town}.",
    "In {a_adj} house at the edge of {town} lived {a_kind} named {name}.",
    "{Time}, {name} woke up feeling {feeling}.",
    "It was a {weather} {season} day in {town}, and {name} was feeling {feeling}.",
    "Nobody in {town} knew {name} very well, but everybody liked {him}.",
    "This is the story of {a_trait} {kind} named {name}.", "Long ago, when {town} was still a small "
    "village, there lived {a_kind} called {name}.",
)
INTRO = (
    "{He} loved {hobby} more than anything.", "Every morning, {he} {did} before breakfast.",
    "{His} favorite thing in the world was {his} {adj} {object}.", "{He} lived with {his} {relative} in "
    "{a_adj} house near {place}.", "{His} best friend was {friend}, who lived just down the road.",
    "{He} was {trait}, {trait2} and a little bit {feeling}.", "{He} dreamed of becoming {a_job} one day.",
    "At school, {his} favorite subject was {subject}.", "{He} had {few} {animals} and {a_adj} {object}.",
    "Everyone said that {name} was the most {trait} {kind} in {town}.",
)
EVENTS = (
    "{He} {move} to {place} and looked around.", "On the way, {he} met {a_trait} {animal}.",
    "{He} found {a_adj} {object} lying under a bench.", "{He} {acted} the {object} {adverb}.",
    "For a while, {he} {did} and thought about {his} {relative}.", "{He} {did} {adverb} while {friend} {did2}.",
    "The sky grew {weather}, and a cold wind blew through {town}.", "{Friend} was waiting by the gate.",
    "{He} stopped to buy {a_food} from a small stall.", "{He} felt {feeling}, but {he} kept going.",
    "At {place}, {a_job} showed {him} {a_adj} {object}.", "{He} counted {few} {objects} on the shelf.",
    "{Time}, {he} {move} to {place}.", "{He} sat down on {a_adj} bench and ate {a_food}.",
    "Nobody in {town} had ever seen anything like it.", "{Name} laughed, and {friend} laughed too.",
    "{He} wrote a note and left it next to the {object}.", "{He} asked {a_job} for directions.",
    "{Friend} and {name} {move} past {place} and on toward {place2}.", "The {scenery} looked {view} in the "
    "evening light.", "It took {him} {few} hours to {act} all the {objects}.", "{His} {clothing} was soaked, "
    "but {he} didn't mind.", "The smell of fresh {foods} drifted down the street.", "{He} picked up {a_adj} "
    "{object} and turned it over in {his} hands.", "The {adj} {object} reminded {him} of {his} {relative}.",
    "{He} could hear {animals} in the distance.", "They shared {a_food} and talked about {hobby}.",
    "{He} took a deep breath.", "Just then, {friend} appeared around the corner.", "For a moment, nobody "
    "said anything.", "{His} {relative} gave {him} {a_food} and {a_adj} {object} for the journey.",
    "The {animal} watched {him} {adverb}.",
    "{He} decided to {do} for a while.", "By the time {he} got home, it was dark.", "{He} {acted} {a_adj} "
    "{object} and put it in {his} bag.", "{He} wondered what {his} {relative} would say.",
    "{Friend} had an idea: they could {act} the {object} together.", "The streets of {town} were {adj} and "
    "{adj2}.", "A {trait} {animal} was sitting on the wall.", "{He} hummed a song about {the_season}.",
)
LINES = (  # things characters say; trailing punctuation decides how the quote is attached
    "Have you seen my {object}?", "I think we should go to {place}.", "It is too {weather} to stay inside!",
    "Look at that {trait} {animal}!", "Can you help me {act} this {object}?", "I have never seen {a_adj} "
    "{object} like this before.", "Let's {do} together.", "Do you want to share my {food}?", "We need {few} "
    "more {objects}.", "Where did you find that?", "I'm so {feeling}!", "What a {weather} day!", "I'll meet you "
    "at {place} after lunch.", "Don't forget your {clothing}.", "Be careful, the path is {adj}.",
    "I wonder what is inside.", "Thank you for helping me.", "That was the best {food} I have ever tasted.",
    "Shall we take the {vehicle}?", "My {relative} says it will be {weather} tomorrow.", "Who left this "
    "{object} here?", "I can't believe it!", "Let me try.", "Why does the {animal} look so {feeling}?",
    "I'm learning to play the {instrument}.", "Wait for me!", "We did it!", "How many {objects} do we have?",
    "This {object} belongs to my {relative}.", "Is it far?", "Not yet, but soon.", "Yes, of course.",
    "I don't think that's a good idea.", "What do you think we should do?", "Let's ask {friend}.",
    "I'm not {feeling} at all.", "We should be home before dark.", "Did you hear that?",
)
class Arc(NamedTuple):
    """The spine of a story. {item}, {goal}, {rel}, {beast} and {contest} stay fixed for a whole story
    (synthetic._character draws them once), so the arc stays about one thing."""
    titles: tuple
    setup: tuple
    middle: tuple
    resolution: tuple


ARCS = {
    "lost": Arc(
        ("The Lost {Item}", "{Name} and the Missing {Item}"),
        ("One day, {name} could not find {his} {item}.", "{His} favorite {item} had gone missing."),
        ("{He} looked under the bed and behind the door, but the {item} was not there.",
         "{He} asked {friend} if {fhe} had seen the {item}.", "{He} searched {place}, then {place2}.",
         "Without the {item}, nothing felt right."),
        ("At last, {he} found the {item} under a pile of leaves.", "The {item} had been in {his} pocket all along.",
         "{Friend} came running with the {item} in {fhis} hand.")),
    "journey": Arc(
        ("The Road to {Goal}", "{Name}'s Journey"),
        ("{Name} had always wanted to visit {goal}.", "{Time}, {name} decided to walk all the way to {goal}."),
        ("The road to {goal} was long and {adj}.", "{He} crossed {a_adj} bridge and climbed {a_adj2} hill.",
         "{He} asked {a_job} how far it was to {goal}.", "More than once, {he} thought about turning back."),
        ("When {he} finally reached {goal}, {he} felt {feeling}.", "{Goal} was even better than {he} had imagined.")),
    "gift": Arc(
        ("A Present for {His} {Rel}", "The {Adj} {Item}"),
        ("{His} {rel}'s birthday was only {few} days away.", "{Name} wanted to give {his} {rel} something special."),
        ("{He} decided to make {a_adj} {item} as a present.", "{He} worked on the {item} every evening.",
         "{He} wrapped the {item} in {color} paper.", "It was harder to make {a_item} than {he} had thought."),
        ("When {his} {rel} opened the present, everyone smiled.", "{His} {rel} said it was the best gift ever.")),
    "contest": Arc(
        ("The {Contest}", "{Name} and the Big Day"),
        ("There was going to be a {contest} in {town}, and {name} wanted to win.",
         "{Name} signed up for the {contest} with {friend}."),
        ("{He} practiced every day after school.", "The night before the {contest}, {he} could hardly sleep.",
         "{Friend} helped {him} get ready for the {contest}."),
        ("{Name} did not win first prize, but {he} had never been prouder.",
         "To everyone's surprise, {name} won first prize!")),
    "storm": Arc(
        ("The Storm", "A Stormy Night in {Town}"),
        ("{Time}, a storm rolled in over {town}.", "Dark clouds gathered over {town}, and the wind began to howl."),
        ("Rain hammered on the roofs and the streets turned into rivers.",
         "{Name} helped {his} {rel} carry the {objects} inside.", "The lights flickered and went out."),
        ("By morning the storm had passed, and the sun came out.",
         "When the storm ended, the whole town came out to help clean up.")),
    "friend": Arc(
        ("{Name} and the {Beast}", "A New Friend"),
        ("{Name} met {a_trait} {beast} that seemed lost.", "{Time}, {name} found a little {beast} by the door."),
        ("{He} gave the {beast} some water and a place to rest.", "The {beast} would not leave {his} side.",
         "{Friend} thought the {beast} was the most {trait} animal {fhe} had ever seen."),
        ("From then on, the {beast} followed {him} everywhere.",
         "In the end, {he} helped the {beast} find its way home.")),
}
ENDINGS = (
    "And that is how {name} learned that {lesson}.", "From that day on, {name} knew that {lesson}.",
    "The end.", "{He} smiled all the way home.", "It had been a very {adj} day.",
    "That night, {name} fell asleep feeling {feeling}.", "{Name} never forgot that {season}.",
)

POEM_OPENERS = (
    "The {topic} is {adj}", "I walk beside the {topic}", "{Animals} rest", "My heart is {feeling}",
    "The {scenery} is {adj}", "We dream", "A {adj} {animal} sleeps", "The old {object} waits",
    "The {topic} whispers", "Soft winds are blowing", "Little {animals} play", "The world is {adj}",
    "I think of you", "The {topic} sings", "{Name} is dancing",
)

SYSTEM_PROMPTS = ("You are nanochat, a helpful assistant.", "You are nanochat, a small language model. Answer briefly.",
                  "You are a friendly assistant named nanochat.")

# Things bought in math word problems.
SHOP = _items("notebook, pencil, apple, ticket, book, toy car, cupcake, plant, ball, sandwich, bag of rice, shirt, "
              "mug, kite, puzzle, scarf")
