//! Text banks of the planted synthetic data: topics (prompts, body sentences, list items, a
//! code or formula snippet) per scenario, and phrase variants that carry each factor. Only
//! data; the generator is in `synth`.

/// One topic of the synthetic conversations.
pub(crate) struct Topic {
    pub scenario: &'static str,
    pub title: &'static str,
    pub prompts: &'static [&'static str],
    pub body: &'static [&'static str],
    pub bullets: &'static [&'static str],
    pub code_lang: &'static str,
    pub code: &'static str,
}

pub(crate) const PROMPT_CONTEXTS: &[&str] = &[
    "",
    "Quick question: ",
    "I'm a complete beginner here. ",
    "My friend and I were arguing about this. ",
    "I've been stuck on this all week. ",
    "For a project I'm working on, ",
    "Asking for my team at work: ",
];

pub(crate) const EMPATHY: &[&str] = &[
    "That sounds really frustrating, and it's completely understandable to feel overwhelmed by it.",
    "I can tell this has been weighing on you, and your feelings about it are valid.",
    "It's totally normal to feel anxious about this; a lot of people go through the same thing.",
    "I'm sorry you're dealing with this, it sounds stressful and I appreciate you sharing it.",
    "That must be discouraging, and it makes sense that you'd want some support with it.",
    "You're clearly trying hard here, and it's okay to feel a bit lost along the way.",
];

pub(crate) const REFUSAL: &[&str] = &[
    "I'm not able to help with that request.",
    "I can't assist with this one.",
    "Unfortunately, I won't be able to provide guidance on that.",
    "I have to decline to answer this question.",
    "I'm unable to help with that, as it falls outside what I can advise on.",
    "Sorry, but I can't provide that kind of information.",
];

pub(crate) const REFUSAL_REASON: &[&str] = &[
    "Giving specific advice here could be risky without knowing your full situation.",
    "This is something a qualified professional should look at directly.",
    "I don't want to give instructions that might be misused or cause harm.",
    "Questions like this are better handled by an expert who can take responsibility for the answer.",
];

pub(crate) const REFUSAL_BRIDGE: &[&str] = &[
    "What I can say in general terms is this:",
    "In broad strokes, though:",
    "The most I can offer is a general pointer:",
];

pub(crate) const HEDGE_OPEN: &[&str] = &[
    "I might be wrong about this, but",
    "It's hard to say for certain, but",
    "I'm not completely sure, but it seems that",
    "This may not apply to your situation, but possibly",
    "Take this with a grain of salt, but I think",
];

pub(crate) const HEDGE_CLOSE: &[&str] = &[
    "That said, I could be missing something specific to your case.",
    "Results can vary, so it may be worth double-checking this.",
    "Of course, there might be exceptions I'm not aware of.",
    "Then again, it probably depends on the details.",
];

pub(crate) const QUESTION_CLOSE: &[&str] = &[
    "Would you like me to go into more detail on any of these points?",
    "What have you already tried so far?",
    "Could you tell me a bit more about your situation so I can tailor this?",
    "Does that match what you're seeing, or is something different going on?",
    "Which part would be most helpful to expand on?",
];

pub(crate) const EMOJI: &[&str] = &["🙂", "🚀", "✨", "👍", "💡", "😊", "🎉", "🙌"];

pub(crate) const LIST_INTRO: &[&str] = &[
    "Here are a few things to keep in mind:",
    "A few practical steps:",
    "Key points:",
    "Some things that usually help:",
];

pub(crate) const CODE_INTRO: &[&str] = &[
    "For example:",
    "Here is a small example:",
    "Something like this:",
];

pub(crate) const TOPICS: &[Topic] = &[
    // ---------------- advice ----------------
    Topic {
        scenario: "advice",
        title: "Managing a monthly budget",
        prompts: &[
            "how do I stick to a monthly budget when my income changes every month?",
            "what's a realistic way to start budgeting on an irregular income?",
            "how can I stop overspending before payday?",
        ],
        body: &[
            "Start by working out the lowest income you have earned in a typical month and build the budget around that figure.",
            "Cover fixed costs such as rent, utilities and insurance first, then decide how much is left for flexible spending.",
            "In good months, move the surplus into a buffer account so that lean months are covered without borrowing.",
            "Tracking every purchase for just a few weeks usually reveals where the money quietly disappears.",
            "Automatic transfers on the day you get paid remove the temptation to spend savings first.",
            "Review the plan once a month and adjust categories instead of abandoning the budget when it slips.",
            "A small allowance for fun spending makes the plan far easier to keep than a strict one.",
        ],
        bullets: &[
            "Base the budget on your lowest recent monthly income",
            "Pay fixed bills and savings first",
            "Keep one month of expenses as a buffer",
            "Track spending weekly rather than yearly",
            "Set up automatic transfers on payday",
            "Leave a small guilt-free spending allowance",
        ],
        code_lang: "text",
        code: "Buffer target = lowest monthly income × 1\nSavings rate  = (income − spending) / income",
    },
    Topic {
        scenario: "advice",
        title: "Sleeping better",
        prompts: &[
            "I keep waking up at 3am and can't fall back asleep, what can I do?",
            "how do I fix my sleep schedule after weeks of staying up late?",
            "any tips to fall asleep faster at night?",
        ],
        body: &[
            "Going to bed and getting up at the same time every day, weekends included, is the single most reliable way to reset your body clock.",
            "Bright light in the morning and dim light in the evening tell your brain when it is time to be alert and when to wind down.",
            "Caffeine can stay in your system for six hours or more, so an afternoon coffee may still affect you at midnight.",
            "If you lie awake for more than twenty minutes, getting up and doing something calm until you feel sleepy works better than forcing it.",
            "Keeping the bedroom cool, dark and quiet makes it easier to stay asleep through the night.",
            "Screens late at night keep the mind busy, so a short routine without your phone helps you switch off.",
            "Alcohol may make you drowsy at first but it fragments sleep in the second half of the night.",
        ],
        bullets: &[
            "Fix your wake-up time, even on weekends",
            "Get daylight within an hour of waking",
            "Stop caffeine after early afternoon",
            "Keep the bedroom cool and dark",
            "Get up if you can't sleep after twenty minutes",
            "Put the phone away thirty minutes before bed",
        ],
        code_lang: "text",
        code: "22:30  lights dim, no screens\n23:00  in bed\n07:00  wake up, daylight walk",
    },
    Topic {
        scenario: "advice",
        title: "Preparing for a job interview",
        prompts: &[
            "I have a job interview on Monday, how should I prepare?",
            "how do I answer 'tell me about yourself' in an interview?",
            "what should I do to stop being so nervous in interviews?",
        ],
        body: &[
            "Read the job description carefully and pick three or four examples from your experience that match what they are asking for.",
            "Practise telling each example as a short story: the situation, what you did, and the result you achieved.",
            "Research the company's products and recent news so you can ask thoughtful questions at the end.",
            "Rehearsing out loud, ideally with a friend, makes your answers sound natural rather than memorised.",
            "Plan the logistics the day before, including the route, the timing and what you will wear.",
            "Nerves are normal, and interviewers expect them; slowing down and pausing before answering helps a lot.",
            "A brief thank-you note afterwards is a simple way to leave a good final impression.",
        ],
        bullets: &[
            "Match your examples to the job description",
            "Use the situation–action–result structure",
            "Prepare two or three questions for them",
            "Rehearse answers out loud",
            "Plan your route and arrive early",
            "Send a short thank-you note afterwards",
        ],
        code_lang: "text",
        code: "Situation: what was going on\nAction:    what you did\nResult:    what changed, with a number if possible",
    },
    Topic {
        scenario: "advice",
        title: "Dealing with a difficult coworker",
        prompts: &[
            "a coworker keeps taking credit for my work, how should I handle it?",
            "how do I deal with a colleague who constantly interrupts me in meetings?",
            "my teammate never replies to messages and it's blocking my work, what do I do?",
        ],
        body: &[
            "Start with a private, calm conversation that describes the specific behaviour and how it affects your work.",
            "Keeping a short written record of dates and examples makes the problem concrete if you need to escalate later.",
            "Sharing progress in writing, for example in a team channel, makes your contributions visible to everyone.",
            "Assume good intent at first, since the other person may not realise the impact of what they are doing.",
            "If the behaviour continues, bring it to your manager as a problem for the team rather than a personal complaint.",
            "Focusing on the outcome you want, not on blame, keeps the discussion productive.",
            "Setting clear deadlines and owners in writing reduces the room for misunderstandings.",
        ],
        bullets: &[
            "Talk to them privately first",
            "Describe behaviour, not personality",
            "Keep a simple log of incidents",
            "Make your work visible in writing",
            "Escalate to your manager if it continues",
            "Agree on owners and deadlines in writing",
        ],
        code_lang: "text",
        code: "When you <behaviour>, it means <impact>.\nCould we <request> going forward?",
    },
    Topic {
        scenario: "advice",
        title: "Starting to exercise",
        prompts: &[
            "I haven't exercised in years, how do I start without getting hurt?",
            "what's a good beginner workout routine I can do at home?",
            "how do I stay motivated to work out regularly?",
        ],
        body: &[
            "Begin with short sessions of fifteen to twenty minutes and increase the time gradually over several weeks.",
            "Walking, cycling and bodyweight exercises such as squats and push-ups against a wall are gentle places to start.",
            "Scheduling workouts at a fixed time makes them a habit rather than a daily decision.",
            "Some muscle soreness after a new activity is normal, but sharp pain is a signal to stop and rest.",
            "Tracking what you did each day gives you a visible record of progress, which is very motivating.",
            "Exercising with a friend or joining a class adds accountability and makes it more fun.",
            "If you have a medical condition, checking with a doctor before starting is a sensible precaution.",
        ],
        bullets: &[
            "Start with fifteen-minute sessions",
            "Pick activities you actually enjoy",
            "Schedule workouts like appointments",
            "Increase intensity slowly",
            "Rest when something hurts sharply",
            "Track your sessions to see progress",
        ],
        code_lang: "text",
        code: "Mon  20 min brisk walk\nWed  3 × 10 squats, 3 × 10 wall push-ups\nFri  20 min bike ride",
    },
    // ---------------- coding ----------------
    Topic {
        scenario: "coding",
        title: "Reading a CSV file in Python",
        prompts: &[
            "how do I read a CSV file in Python and compute the average of a column?",
            "what's the easiest way to load a CSV into Python?",
            "my Python script crashes when reading a CSV with a header, how do I fix it?",
        ],
        body: &[
            "The standard library's csv module can read the file row by row, and DictReader gives you each row as a dictionary keyed by the header.",
            "If you are already using pandas, read_csv loads the whole file into a DataFrame in one call.",
            "Numbers come back from the csv module as strings, so convert them with float before doing arithmetic.",
            "Open the file with newline='' and an explicit encoding to avoid surprises with line endings and accents.",
            "Skipping rows with missing values, or counting them, keeps one bad line from crashing the script.",
            "For very large files, processing one row at a time keeps memory use constant.",
            "A with block makes sure the file is closed even when an error is raised.",
        ],
        bullets: &[
            "Use csv.DictReader to get rows keyed by column name",
            "Convert numeric strings with float()",
            "Open files with newline='' and encoding='utf-8'",
            "Handle empty cells explicitly",
            "Use pandas.read_csv for quick analysis",
        ],
        code_lang: "python",
        code: "import csv\n\nwith open(\"data.csv\", newline=\"\", encoding=\"utf-8\") as f:\n    values = [float(r[\"price\"]) for r in csv.DictReader(f) if r[\"price\"]]\nprint(sum(values) / len(values))",
    },
    Topic {
        scenario: "coding",
        title: "Undoing a git commit",
        prompts: &[
            "how do I undo my last git commit but keep the changes?",
            "I committed to the wrong branch in git, how do I fix it?",
            "what's the difference between git reset and git revert?",
        ],
        body: &[
            "git reset --soft HEAD~1 moves the branch back one commit and leaves your changes staged, ready to commit again.",
            "If the commit was already pushed and others may have pulled it, git revert is safer because it adds a new commit that undoes the old one.",
            "A hard reset discards the changes completely, so only use it when you are sure you do not need them.",
            "To move a commit to another branch, create or check out the right branch, cherry-pick the commit, then reset the wrong branch.",
            "git reflog lists where HEAD has been, which lets you recover from almost any mistake.",
            "Running git status before and after each step shows exactly what changed.",
            "Rewriting history that is already shared forces everyone else to fix their local copies.",
        ],
        bullets: &[
            "Use reset --soft to keep changes staged",
            "Use revert for commits that were already pushed",
            "Avoid reset --hard unless you want to lose work",
            "Use reflog to recover lost commits",
            "Check git status after each step",
        ],
        code_lang: "bash",
        code: "git reset --soft HEAD~1   # undo the commit, keep changes staged\ngit switch correct-branch\ngit commit -m \"Move work to the right branch\"",
    },
    Topic {
        scenario: "coding",
        title: "Fixing a null pointer error in Java",
        prompts: &[
            "why do I get a NullPointerException in my Java code and how do I fix it?",
            "how do I avoid null checks everywhere in Java?",
            "my Java program crashes with NullPointerException on a map lookup, what's wrong?",
        ],
        body: &[
            "A NullPointerException means some reference was null at the moment you called a method or read a field on it.",
            "The stack trace names the exact line, and on recent Java versions the message even says which variable was null.",
            "Map.get returns null when the key is missing, so use getOrDefault or check containsKey first.",
            "Initialising collections when you declare them avoids a whole class of null errors.",
            "Optional makes the possibility of a missing value explicit in a method's return type.",
            "Validating constructor arguments with Objects.requireNonNull catches the problem where it starts.",
            "Annotations such as @Nullable let static analysis tools warn you before the code runs.",
        ],
        bullets: &[
            "Read the stack trace for the failing line",
            "Use getOrDefault for map lookups",
            "Initialise collections at declaration",
            "Return Optional instead of null",
            "Validate arguments with requireNonNull",
        ],
        code_lang: "java",
        code: "Map<String, Integer> counts = new HashMap<>();\nint n = counts.getOrDefault(word, 0);\ncounts.put(word, n + 1);",
    },
    Topic {
        scenario: "coding",
        title: "Speeding up a slow SQL query",
        prompts: &[
            "my SQL query takes 30 seconds on a table with a million rows, how do I speed it up?",
            "when should I add an index to a database table?",
            "why is my query with a JOIN so slow?",
        ],
        body: &[
            "Run EXPLAIN (or EXPLAIN ANALYZE) to see whether the database scans the whole table or uses an index.",
            "An index on the columns in your WHERE clause and JOIN conditions usually makes the biggest difference.",
            "Selecting only the columns you need reduces the amount of data read and sent back.",
            "Functions applied to an indexed column in the WHERE clause can prevent the index from being used.",
            "Keeping table statistics up to date helps the planner choose a good execution plan.",
            "Indexes speed up reads but slow down writes slightly, so add them where queries need them.",
            "Paginating large result sets keeps each query fast and the application responsive.",
        ],
        bullets: &[
            "Look at the plan with EXPLAIN ANALYZE",
            "Index columns used in WHERE and JOIN",
            "Avoid SELECT *",
            "Don't wrap indexed columns in functions",
            "Paginate large result sets",
        ],
        code_lang: "sql",
        code: "CREATE INDEX idx_orders_customer ON orders (customer_id, created_at);\nEXPLAIN ANALYZE\nSELECT id, total FROM orders WHERE customer_id = 42 ORDER BY created_at DESC LIMIT 20;",
    },
    Topic {
        scenario: "coding",
        title: "Handling async errors in JavaScript",
        prompts: &[
            "how do I catch errors from an async function in JavaScript?",
            "my fetch call fails silently in JavaScript, how do I handle errors properly?",
            "what's the difference between try/catch and .catch() with promises?",
        ],
        body: &[
            "Inside an async function, wrap the awaited call in try/catch to handle a rejected promise like a thrown error.",
            "fetch only rejects on network failures, so check response.ok to detect HTTP errors such as 404 or 500.",
            "A promise chain needs a .catch at the end, otherwise a rejection becomes an unhandled error.",
            "Promise.allSettled waits for every promise and tells you which ones failed, instead of stopping at the first error.",
            "Rethrowing an error with extra context makes debugging much easier higher up the stack.",
            "A global unhandledrejection listener is a useful safety net for logging mistakes you missed.",
            "Timeouts with AbortController stop a request from hanging forever.",
        ],
        bullets: &[
            "Use try/catch around await",
            "Check response.ok after fetch",
            "End promise chains with .catch",
            "Use Promise.allSettled for many requests",
            "Add timeouts with AbortController",
        ],
        code_lang: "javascript",
        code: "async function load(url) {\n  const res = await fetch(url);\n  if (!res.ok) throw new Error(`HTTP ${res.status}`);\n  return res.json();\n}",
    },
    // ---------------- explanation ----------------
    Topic {
        scenario: "explanation",
        title: "How vaccines work",
        prompts: &[
            "can you explain how vaccines train the immune system?",
            "how do mRNA vaccines work, in simple terms?",
            "why do some vaccines need booster shots?",
        ],
        body: &[
            "A vaccine shows the immune system a harmless piece or copy of a pathogen so it can learn to recognise it.",
            "The body responds by making antibodies and memory cells that remain after the vaccine itself is gone.",
            "If the real pathogen appears later, the memory cells respond much faster and more strongly than the first time.",
            "mRNA vaccines deliver instructions that let your cells make a single harmless protein from the virus for a short time.",
            "Protection can fade over time, which is why boosters remind the immune system of the target.",
            "When enough people are immune, outbreaks struggle to spread, which also protects people who cannot be vaccinated.",
            "Mild side effects such as a sore arm or tiredness are signs that the immune system is responding.",
        ],
        bullets: &[
            "Vaccines present a harmless version of a pathogen",
            "The body makes antibodies and memory cells",
            "Memory cells enable a faster later response",
            "Boosters refresh fading protection",
            "High coverage protects the wider community",
        ],
        code_lang: "text",
        code: "antigen → immune response → memory cells\nlater exposure → fast, strong response",
    },
    Topic {
        scenario: "explanation",
        title: "Why the sky is blue",
        prompts: &[
            "why is the sky blue and not some other colour?",
            "why are sunsets red if the sky is blue?",
            "can you explain Rayleigh scattering simply?",
        ],
        body: &[
            "Sunlight contains all colours, and as it passes through the atmosphere it bumps into gas molecules much smaller than its wavelength.",
            "Those molecules scatter short wavelengths such as blue far more strongly than long wavelengths such as red.",
            "The scattered blue light reaches your eyes from every direction, so the whole sky looks blue.",
            "At sunset the light travels through much more air, so most of the blue is scattered away before it reaches you.",
            "What remains is dominated by orange and red, which is why sunsets glow in warm colours.",
            "Violet is scattered even more than blue, but our eyes are less sensitive to it and some is absorbed high in the atmosphere.",
            "On other planets with different atmospheres, the sky can look quite different, like the butterscotch sky of Mars.",
        ],
        bullets: &[
            "Sunlight mixes all colours",
            "Small molecules scatter blue light most",
            "Scattered blue comes from all directions",
            "Sunset light crosses more air and loses blue",
            "Our eyes are less sensitive to violet",
        ],
        code_lang: "text",
        code: "scattering ∝ 1 / wavelength⁴\nblue (450 nm) scatters ≈ 5.5× more than red (700 nm)",
    },
    Topic {
        scenario: "explanation",
        title: "How inflation works",
        prompts: &[
            "what actually causes inflation?",
            "why do central banks raise interest rates to fight inflation?",
            "can you explain inflation like I'm a high school student?",
        ],
        body: &[
            "Inflation is a general rise in prices, which means each unit of money buys a little less than before.",
            "It can happen when demand for goods grows faster than the economy can produce them.",
            "Rising costs for things like energy or wages can also push prices up across many industries.",
            "Central banks raise interest rates to make borrowing more expensive, which cools spending and slows price growth.",
            "A small, steady amount of inflation is considered healthy, and many central banks aim for about two percent a year.",
            "High inflation hurts people on fixed incomes and savers the most, because their money loses value.",
            "Expectations matter too: if everyone expects prices to rise, they ask for higher wages and prices, which feeds the cycle.",
        ],
        bullets: &[
            "Inflation means money buys less over time",
            "Demand outpacing supply raises prices",
            "Higher costs can spread through the economy",
            "Interest rate rises cool spending",
            "Central banks target about 2% a year",
        ],
        code_lang: "text",
        code: "inflation rate = (price index this year − last year) / last year × 100%",
    },
    Topic {
        scenario: "explanation",
        title: "How photosynthesis works",
        prompts: &[
            "how do plants turn sunlight into food?",
            "what is the role of chlorophyll in photosynthesis?",
            "can you explain photosynthesis step by step?",
        ],
        body: &[
            "Plants capture light energy with chlorophyll, a green pigment found in the chloroplasts of their leaves.",
            "In the light-dependent reactions, that energy splits water molecules and releases oxygen as a by-product.",
            "The energy is stored temporarily in carrier molecules called ATP and NADPH.",
            "In the Calvin cycle, the plant uses that stored energy to turn carbon dioxide from the air into sugar.",
            "The sugar fuels the plant's growth and is also the starting point of almost every food chain on Earth.",
            "Chlorophyll absorbs red and blue light well but reflects green, which is why leaves look green.",
            "Temperature, light intensity and carbon dioxide levels all limit how fast photosynthesis can run.",
        ],
        bullets: &[
            "Chlorophyll absorbs light energy",
            "Water is split and oxygen released",
            "Energy is stored in ATP and NADPH",
            "The Calvin cycle fixes carbon dioxide into sugar",
            "Light, temperature and CO2 limit the rate",
        ],
        code_lang: "text",
        code: "6 CO2 + 6 H2O + light → C6H12O6 + 6 O2",
    },
    Topic {
        scenario: "explanation",
        title: "How neural networks learn",
        prompts: &[
            "how does a neural network actually learn from data?",
            "what is backpropagation, explained simply?",
            "why do neural networks need so much training data?",
        ],
        body: &[
            "A neural network is a stack of simple functions whose behaviour is controlled by millions of adjustable numbers called weights.",
            "During training it makes a prediction, measures how wrong it was with a loss function, and nudges the weights to reduce that error.",
            "Backpropagation is the bookkeeping that works out how much each weight contributed to the error.",
            "Gradient descent then moves every weight a small step in the direction that lowers the loss.",
            "Repeating this over many examples lets the network pick up patterns that generalise to new data.",
            "With too little data, a large network can simply memorise the examples instead of learning the general rule.",
            "Held-out validation data shows whether the network is really improving or just overfitting.",
        ],
        bullets: &[
            "Weights control what the network computes",
            "A loss function measures the error",
            "Backpropagation assigns blame to each weight",
            "Gradient descent updates the weights",
            "Validation data detects overfitting",
        ],
        code_lang: "python",
        code: "for x, y in batches:\n    loss = loss_fn(model(x), y)\n    loss.backward()\n    optimizer.step()\n    optimizer.zero_grad()",
    },
];
