//! A parser for the reference package's own notation, so users can paste what they know:
//! groups `SO(3)`, `O13()`, `SO(3)*S(4)`; representations `V`, `V.T`, `V**2`, `2*V+V**2`,
//! `T(1,1)`, `Scalar+V`, `V(SO(3))*V(S(4))`, `(V+V.T) >> V`. Errors point at the character.

use std::sync::Arc;

use super::group::Group;
use super::rep::Rep;

/// A parse error: what was expected, and where (0-based character offset).
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    /// Character offset into the input.
    pub pos: usize,
    /// What went wrong.
    pub msg: String,
}

impl ParseError {
    /// One line: the message, the column, and the input with a marker at the offending place.
    pub fn render(&self, input: &str) -> String {
        let (a, b): (String, String) = {
            let chars: Vec<char> = input.chars().collect();
            let p = self.pos.min(chars.len());
            (chars[..p].iter().collect(), chars[p..].iter().collect())
        };
        format!("{} at character {}: {a}⟨here⟩{b}", self.msg, self.pos + 1)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Int(i64),
    Name(String),
    Sym(&'static str),
    End,
}

fn lex(s: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_digit() {
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let v = text.parse().map_err(|_| ParseError {
                pos: start,
                msg: format!("integer {text} is too large"),
            })?;
            out.push((Tok::Int(v), start));
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((Tok::Name(chars[start..i].iter().collect()), start));
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let sym = match two.as_str() {
            "**" => Some("**"),
            ">>" => Some(">>"),
            "<<" => Some("<<"),
            _ => None,
        };
        if let Some(sym) = sym {
            out.push((Tok::Sym(sym), start));
            i += 2;
            continue;
        }
        let sym = match c {
            '+' => "+",
            '*' => "*",
            '(' => "(",
            ')' => ")",
            ',' => ",",
            '.' => ".",
            _ => {
                return Err(ParseError {
                    pos: start,
                    msg: format!("unexpected character '{c}'"),
                })
            }
        };
        out.push((Tok::Sym(sym), start));
        i += 1;
    }
    out.push((Tok::End, chars.len()));
    Ok(out)
}

#[derive(Clone, Debug)]
enum Val {
    Int(i64),
    Rep(Rep),
    Group(Arc<Group>),
}

impl Val {
    fn kind(&self) -> &'static str {
        match self {
            Val::Int(_) => "an integer",
            Val::Rep(_) => "a representation",
            Val::Group(_) => "a group",
        }
    }
}

struct Parser<'a> {
    toks: Vec<(Tok, usize)>,
    i: usize,
    group: Option<&'a Arc<Group>>,
}

type P<T> = Result<T, ParseError>;

/// Largest integer accepted for group sizes, multiplicities and powers.
const MAX_INT: i64 = 4096;

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.i].0
    }
    fn pos(&self) -> usize {
        self.toks[self.i].1
    }
    fn err<T>(&self, msg: impl Into<String>) -> P<T> {
        Err(ParseError {
            pos: self.pos(),
            msg: msg.into(),
        })
    }
    fn eat(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Tok::Sym(s) if *s == sym) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, sym: &str) -> P<()> {
        if self.eat(sym) {
            Ok(())
        } else {
            self.err(format!("expected '{sym}'"))
        }
    }

    fn expr(&mut self) -> P<Val> {
        let mut lhs = self.sum()?;
        loop {
            let pos = self.pos();
            let op = if self.eat(">>") {
                ">>"
            } else if self.eat("<<") {
                "<<"
            } else {
                return Ok(lhs);
            };
            let rhs = self.sum()?;
            let (a, b) = (as_rep(lhs, pos, op)?, as_rep(rhs, pos, op)?);
            lhs = Val::Rep(if op == ">>" {
                a.maps_to(&b)
            } else {
                b.maps_to(&a)
            });
        }
    }

    fn sum(&mut self) -> P<Val> {
        let mut lhs = self.product()?;
        loop {
            let pos = self.pos();
            if !self.eat("+") {
                return Ok(lhs);
            }
            let rhs = self.product()?;
            lhs = match (lhs, rhs) {
                (Val::Int(a), Val::Int(b)) => Val::Int(a + b),
                (a, b) => {
                    let (a, b) = (as_rep(a, pos, "+")?, as_rep(b, pos, "+")?);
                    Val::Rep(Rep::Sum(vec![a, b]))
                }
            };
        }
    }

    fn product(&mut self) -> P<Val> {
        let mut lhs = self.power()?;
        loop {
            let pos = self.pos();
            if !self.eat("*") {
                return Ok(lhs);
            }
            let rhs = self.power()?;
            lhs = match (lhs, rhs) {
                (Val::Int(a), Val::Int(b)) => Val::Int(a.saturating_mul(b)),
                (Val::Int(n), Val::Rep(r)) | (Val::Rep(r), Val::Int(n)) => {
                    if !(1..=MAX_INT).contains(&n) {
                        return Err(ParseError {
                            pos,
                            msg: format!("multiplicity {n} must be between 1 and {MAX_INT}"),
                        });
                    }
                    Val::Rep(Rep::Sum(vec![r; n as usize]))
                }
                (Val::Rep(a), Val::Rep(b)) => Val::Rep(Rep::Prod(vec![a, b])),
                (Val::Group(a), Val::Group(b)) => Val::Group(Group::product(&a, &b).shared()),
                (a, b) => {
                    return Err(ParseError {
                        pos,
                        msg: format!("cannot multiply {} by {}", a.kind(), b.kind()),
                    })
                }
            };
        }
    }

    fn power(&mut self) -> P<Val> {
        let base = self.postfix()?;
        let pos = self.pos();
        if !self.eat("**") {
            return Ok(base);
        }
        let exp = self.power()?;
        match (base, exp) {
            (Val::Rep(r), Val::Int(k)) if (0..=64).contains(&k) => Ok(Val::Rep(if k == 0 {
                Rep::Scalar
            } else {
                Rep::Prod(vec![r; k as usize])
            })),
            (Val::Rep(_), Val::Int(k)) => Err(ParseError {
                pos,
                msg: format!("power {k} must be between 0 and 64"),
            }),
            (Val::Int(a), Val::Int(b)) if (0..=62).contains(&b) => {
                Ok(Val::Int(a.saturating_pow(b as u32)))
            }
            (a, b) => Err(ParseError {
                pos,
                msg: format!("cannot raise {} to {}", a.kind(), b.kind()),
            }),
        }
    }

    fn postfix(&mut self) -> P<Val> {
        let mut v = self.atom()?;
        loop {
            let pos = self.pos();
            if !self.eat(".") {
                return Ok(v);
            }
            match self.peek().clone() {
                Tok::Name(n) if n == "T" => {
                    self.i += 1;
                    v = Val::Rep(as_rep(v, pos, ".T")?.dual());
                }
                _ => return self.err("expected 'T' after '.' (the dual, V.T)"),
            }
        }
    }

    fn int_arg(&mut self, what: &str) -> P<i64> {
        match self.peek().clone() {
            Tok::Int(v) if v <= MAX_INT => {
                self.i += 1;
                Ok(v)
            }
            Tok::Int(v) => self.err(format!("{what} {v} is too large (at most {MAX_INT})")),
            _ => self.err(format!("expected an integer ({what})")),
        }
    }

    fn atom(&mut self) -> P<Val> {
        let pos = self.pos();
        match self.peek().clone() {
            Tok::Int(v) => {
                self.i += 1;
                Ok(Val::Int(v))
            }
            Tok::Sym("(") => {
                self.i += 1;
                let v = self.expr()?;
                self.expect(")")?;
                Ok(v)
            }
            Tok::Name(name) => {
                self.i += 1;
                self.named(&name, pos)
            }
            Tok::End => self.err("unexpected end of input"),
            Tok::Sym(s) => self.err(format!("unexpected '{s}'")),
        }
    }

    fn default_group(&self, pos: usize, what: &str) -> P<Arc<Group>> {
        self.group.cloned().ok_or_else(|| ParseError {
            pos,
            msg: format!("{what} needs a group: pass `group`, or write {what}(G) as in V(SO(3))"),
        })
    }

    fn named(&mut self, name: &str, pos: usize) -> P<Val> {
        let has_call = matches!(self.peek(), Tok::Sym("("));
        match name {
            "Scalar" => Ok(Val::Rep(Rep::Scalar)),
            "V" | "Vector" => {
                if has_call {
                    self.i += 1;
                    let g = self.expr()?;
                    self.expect(")")?;
                    match g {
                        Val::Group(g) => Ok(Val::Rep(Rep::v(&g))),
                        other => Err(ParseError {
                            pos,
                            msg: format!("V(…) takes a group, not {}", other.kind()),
                        }),
                    }
                } else {
                    Ok(Val::Rep(Rep::v(&self.default_group(pos, "V")?)))
                }
            }
            "T" => {
                self.expect("(")?;
                let p = self.int_arg("tensor rank p")?;
                let q = if self.eat(",") {
                    self.int_arg("tensor rank q")?
                } else {
                    0
                };
                let g = if self.eat(",") {
                    match self.expr()? {
                        Val::Group(g) => g,
                        other => {
                            return Err(ParseError {
                                pos,
                                msg: format!("T(p, q, G) takes a group, not {}", other.kind()),
                            })
                        }
                    }
                } else {
                    self.default_group(pos, "T")?
                };
                self.expect(")")?;
                if p + q > 64 {
                    return Err(ParseError {
                        pos,
                        msg: format!("T({p},{q}) has rank above 64"),
                    });
                }
                Ok(Val::Rep(Rep::t(&g, p as usize, q as usize)))
            }
            _ => self.group(name, pos).map(Val::Group),
        }
    }

    fn group(&mut self, name: &str, pos: usize) -> P<Arc<Group>> {
        const NULLARY: &[&str] = &[
            "SO13p",
            "SO13",
            "O13",
            "Lorentz",
            "SO11p",
            "O11",
            "Cube",
            "RubiksCube",
            "RubiksCubeGeometric",
            "SO2eR3",
            "O2eR3",
        ];
        const UNARY: &[&str] = &[
            "SO", "O", "C", "D", "Z", "S", "Sp", "SL", "GL", "Scaling", "Trivial", "DkeR3",
        ];
        if name == "U" || name == "SU" {
            return Err(ParseError {
                pos,
                msg: format!("{name}(n) is a complex group; Keel's groups are real"),
            });
        }
        let known = NULLARY.contains(&name) || UNARY.contains(&name);
        if !known {
            return Err(ParseError {
                pos,
                msg: format!(
                    "unknown name '{name}' (groups: SO(n), O(n), C(k), D(k), Z(n), S(n), Sp(m), \
                     SL(n), GL(n), Scaling(n), Trivial(n), SO13p(), SO13(), O13(), Lorentz(), \
                     SO11p(), O11(), Cube(), RubiksCube(), RubiksCubeGeometric(), SO2eR3(), \
                     O2eR3(), DkeR3(k); reps: V, Scalar, T(p,q))"
                ),
            });
        }
        self.expect("(")?;
        let arg = if UNARY.contains(&name) {
            let apos = self.pos();
            let n = self.int_arg("group size")?;
            if n < 1 {
                return Err(ParseError {
                    pos: apos,
                    msg: format!("{name}({n}): the size must be at least 1"),
                });
            }
            let limit = if matches!(name, "C" | "D" | "DkeR3") {
                MAX_INT
            } else {
                64
            };
            if n > limit {
                return Err(ParseError {
                    pos: apos,
                    msg: format!("{name}({n}): the size must be at most {limit}"),
                });
            }
            n as usize
        } else {
            0
        };
        self.expect(")")?;
        let g = match name {
            "SO" => Group::so(arg),
            "O" => Group::o(arg),
            "C" => Group::c(arg),
            "D" => Group::dihedral(arg),
            "Z" => Group::z(arg),
            "S" => Group::s(arg),
            "Sp" => Group::sp(arg),
            "SL" => Group::sl(arg),
            "GL" => Group::gl(arg),
            "Scaling" => Group::scaling(arg),
            "Trivial" => Group::trivial(arg),
            "DkeR3" => Group::embed(&Group::dihedral(arg), 3, format!("DkeR3({arg})")),
            "SO13p" => Group::so13p(),
            "SO13" => Group::so13(),
            "O13" | "Lorentz" => Group::o13(),
            "SO11p" => Group::so11p(),
            "O11" => Group::o11(),
            "Cube" => Group::cube(),
            "RubiksCube" => Group::rubiks_cube(),
            "RubiksCubeGeometric" => Group::rubiks_cube_geometric(),
            "SO2eR3" => Group::embed(&Group::so(2), 3, "SO2eR3()".into()),
            "O2eR3" => Group::embed(&Group::o(2), 3, "O2eR3()".into()),
            _ => unreachable!("checked against the name lists above"),
        };
        Ok(g.shared())
    }
}

fn as_rep(v: Val, pos: usize, op: &str) -> P<Rep> {
    match v {
        Val::Rep(r) => Ok(r),
        Val::Int(n) if (1..=MAX_INT).contains(&n) && op == "+" => {
            Ok(Rep::Sum(vec![Rep::Scalar; n as usize]))
        }
        other => Err(ParseError {
            pos,
            msg: format!("'{op}' needs a representation, not {}", other.kind()),
        }),
    }
}

fn run(input: &str, group: Option<&Arc<Group>>) -> P<Val> {
    let toks = lex(input)?;
    let mut p = Parser { toks, i: 0, group };
    let v = p.expr()?;
    if *p.peek() != Tok::End {
        return p.err("unexpected text after the expression");
    }
    Ok(v)
}

/// Parse a group such as `SO(3)`, `O13()`, `SO(3)*S(4)`.
pub fn parse_group(input: &str) -> Result<Arc<Group>, ParseError> {
    match run(input, None)? {
        Val::Group(g) => Ok(g),
        other => Err(ParseError {
            pos: 0,
            msg: format!("expected a group, found {}", other.kind()),
        }),
    }
}

/// Parse a representation; bare `V`, `T(p,q)` refer to `group`.
pub fn parse_rep(input: &str, group: Option<&Arc<Group>>) -> Result<Rep, ParseError> {
    match run(input, group)? {
        Val::Rep(r) => Ok(r),
        Val::Int(n) if (1..=MAX_INT).contains(&n) => Ok(Rep::Sum(vec![Rep::Scalar; n as usize])),
        other => Err(ParseError {
            pos: 0,
            msg: format!("expected a representation, found {}", other.kind()),
        }),
    }
}
