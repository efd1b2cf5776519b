// Recursive-descent parser for Sonde SQL.
#include "server/query/parser.h"

#include <charconv>
#include <strings.h>

#include "server/query/lexer.h"

namespace sonde::server::query {
namespace {

// Bounds recursion so hostile input cannot exhaust the stack.
constexpr int kMaxDepth = 128;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

class Parser {
 public:
  Parser(std::string_view sql, std::vector<Token> tokens) : sql_(sql), tokens_(std::move(tokens)) {}

  StatusOr<Statement> ParseStatement() {
    Statement st;
    if (IsKeyword("SHOW")) {
      Advance();
      SONDE_RETURN_IF_ERROR(ExpectKeyword("TABLES"));
      st.kind = StatementKind::kShowTables;
    } else if (IsKeyword("DESCRIBE") || IsKeyword("DESC")) {
      Advance();
      if (IsKeyword("TABLE")) Advance();
      st.kind = StatementKind::kDescribe;
      st.table_pos = Peek().pos;
      SONDE_ASSIGN_OR_RETURN(st.table, ParseDottedName("table name"));
    } else if (IsKeyword("SELECT")) {
      SONDE_RETURN_IF_ERROR(ParseSelect(&st.select));
    } else {
      return Error(Peek().pos, "expected SELECT, SHOW TABLES or DESCRIBE (queries are read-only)");
    }
    if (IsOp(";")) Advance();
    if (Peek().kind != TokenKind::kEnd) return Error(Peek().pos, "unexpected '" + Peek().text + "'");
    return st;
  }

 private:
  const Token& Peek(size_t ahead = 0) const {
    const size_t i = std::min(pos_ + ahead, tokens_.size() - 1);
    return tokens_[i];
  }
  void Advance() {
    if (pos_ + 1 < tokens_.size()) ++pos_;
  }
  size_t PrevEnd() const { return pos_ == 0 ? 0 : tokens_[pos_ - 1].end; }
  bool IsKeyword(std::string_view kw, size_t ahead = 0) const {
    const Token& t = Peek(ahead);
    return t.kind == TokenKind::kIdentifier && EqualsIgnoreCase(t.text, kw);
  }
  bool IsOp(std::string_view op) const {
    return Peek().kind == TokenKind::kOperator && Peek().text == op;
  }
  Status Error(size_t pos, std::string_view msg) const {
    return InvalidArgumentError(FormatPositionError(sql_, pos, msg));
  }
  Status ExpectKeyword(std::string_view kw) {
    if (!IsKeyword(kw)) return Error(Peek().pos, "expected " + std::string(kw) + Found());
    Advance();
    return Status::Ok();
  }
  Status ExpectOp(std::string_view op) {
    if (!IsOp(op)) return Error(Peek().pos, "expected '" + std::string(op) + "'" + Found());
    Advance();
    return Status::Ok();
  }
  std::string Found() const {
    if (Peek().kind == TokenKind::kEnd) return " but the query ended";
    return " but found '" + Peek().text + "'";
  }

  static bool IsReserved(std::string_view w) {
    static constexpr std::string_view kReserved[] = {
        "SELECT", "FROM", "WHERE", "GROUP", "BY", "HAVING", "ORDER", "LIMIT", "OFFSET", "AND",
        "OR", "NOT", "IN", "LIKE", "BETWEEN", "AS", "ASC", "DESC", "DISTINCT"};
    for (auto r : kReserved) {
      if (EqualsIgnoreCase(w, r)) return true;
    }
    return false;
  }

  // name ('.' name)*, names plain or `quoted`.
  StatusOr<std::string> ParseDottedName(std::string_view what) {
    std::string out;
    while (true) {
      const Token& t = Peek();
      if (t.kind == TokenKind::kQuotedIdentifier ||
          (t.kind == TokenKind::kIdentifier && !IsReserved(t.text))) {
        out += t.text;
        Advance();
      } else {
        return Error(t.pos, "expected " + std::string(what) + Found());
      }
      if (!IsOp(".")) break;
      out += '.';
      Advance();
    }
    return out;
  }

  Status ParseSelect(SelectStmt* s) {
    SONDE_RETURN_IF_ERROR(ExpectKeyword("SELECT"));
    if (IsKeyword("DISTINCT")) {
      s->distinct = true;
      Advance();
    }
    while (true) {
      SelectItem item;
      SONDE_ASSIGN_OR_RETURN(item.expr, ParseExpr(0));
      if (IsKeyword("AS")) {
        Advance();
        const Token& t = Peek();
        if (t.kind != TokenKind::kQuotedIdentifier &&
            (t.kind != TokenKind::kIdentifier || IsReserved(t.text))) {
          return Error(t.pos, "expected an alias after AS" + Found());
        }
        item.alias = t.text;
        item.alias_pos = t.pos;
        Advance();
      }
      s->items.push_back(std::move(item));
      if (!IsOp(",")) break;
      Advance();
    }
    SONDE_RETURN_IF_ERROR(ExpectKeyword("FROM"));
    s->table_pos = Peek().pos;
    SONDE_ASSIGN_OR_RETURN(s->table, ParseDottedName("table name"));
    if (IsKeyword("WHERE")) {
      Advance();
      SONDE_ASSIGN_OR_RETURN(s->where, ParseExpr(0));
    }
    if (IsKeyword("GROUP")) {
      Advance();
      SONDE_RETURN_IF_ERROR(ExpectKeyword("BY"));
      SONDE_RETURN_IF_ERROR(ParseExprList(&s->group_by));
    }
    if (IsKeyword("HAVING")) {
      Advance();
      SONDE_ASSIGN_OR_RETURN(s->having, ParseExpr(0));
    }
    if (IsKeyword("ORDER")) {
      Advance();
      SONDE_RETURN_IF_ERROR(ExpectKeyword("BY"));
      while (true) {
        OrderItem o;
        SONDE_ASSIGN_OR_RETURN(o.expr, ParseExpr(0));
        if (IsKeyword("ASC")) {
          Advance();
        } else if (IsKeyword("DESC")) {
          o.descending = true;
          Advance();
        }
        s->order_by.push_back(std::move(o));
        if (!IsOp(",")) break;
        Advance();
      }
    }
    if (IsKeyword("LIMIT")) {
      Advance();
      SONDE_ASSIGN_OR_RETURN(uint64_t first, ParseCount());
      if (IsOp(",")) {  // LIMIT offset, count
        Advance();
        SONDE_ASSIGN_OR_RETURN(uint64_t count, ParseCount());
        s->offset = first;
        s->limit = count;
      } else {
        s->limit = first;
        if (IsKeyword("OFFSET")) {
          Advance();
          SONDE_ASSIGN_OR_RETURN(uint64_t off, ParseCount());
          s->offset = off;
        }
      }
    }
    return Status::Ok();
  }

  StatusOr<uint64_t> ParseCount() {
    const Token& t = Peek();
    uint64_t v = 0;
    if (t.kind != TokenKind::kNumber) return Error(t.pos, "expected a non-negative integer" + Found());
    auto [p, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
    if (ec != std::errc() || p != t.text.data() + t.text.size()) {
      return Error(t.pos, "expected a non-negative integer" + Found());
    }
    Advance();
    return v;
  }

  Status ParseExprList(std::vector<ExprPtr>* out) {
    while (true) {
      SONDE_ASSIGN_OR_RETURN(ExprPtr e, ParseExpr(0));
      out->push_back(std::move(e));
      if (!IsOp(",")) return Status::Ok();
      Advance();
    }
  }

  ExprPtr Make(ExprKind kind, std::string text, size_t pos) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->text = std::move(text);
    e->pos = pos;
    e->end_pos = pos;
    return e;
  }
  ExprPtr Binary(std::string op, ExprPtr l, ExprPtr r) {
    auto e = Make(ExprKind::kBinary, std::move(op), l->pos);
    e->end_pos = r->end_pos;
    e->args.push_back(std::move(l));
    e->args.push_back(std::move(r));
    return e;
  }

  // Precedence levels: 0 OR, 1 AND, 2 NOT, 3 comparison, 4 additive, 5 multiplicative, 6 unary.
  StatusOr<ExprPtr> ParseExpr(int level) {
    if (++depth_ > kMaxDepth) return Error(Peek().pos, "expression nested too deeply");
    auto r = ParseLevel(level);
    --depth_;
    return r;
  }

  StatusOr<ExprPtr> ParseLevel(int level) {
    switch (level) {
      case 0:
      case 1: {
        const char* kw = level == 0 ? "OR" : "AND";
        SONDE_ASSIGN_OR_RETURN(ExprPtr l, ParseExpr(level + 1));
        while (IsKeyword(kw)) {
          Advance();
          SONDE_ASSIGN_OR_RETURN(ExprPtr r, ParseExpr(level + 1));
          l = Binary(kw, std::move(l), std::move(r));
        }
        return l;
      }
      case 2: {
        if (IsKeyword("NOT")) {
          const size_t p = Peek().pos;
          Advance();
          SONDE_ASSIGN_OR_RETURN(ExprPtr a, ParseExpr(2));
          auto e = Make(ExprKind::kUnary, "NOT", p);
          e->end_pos = a->end_pos;
          e->args.push_back(std::move(a));
          return e;
        }
        return ParseExpr(3);
      }
      case 3:
        return ParseComparison();
      case 4:
      case 5: {
        SONDE_ASSIGN_OR_RETURN(ExprPtr l, ParseExpr(level + 1));
        while (Peek().kind == TokenKind::kOperator &&
               (level == 4 ? (IsOp("+") || IsOp("-")) : (IsOp("*") || IsOp("/") || IsOp("%")))) {
          std::string op = Peek().text;
          Advance();
          SONDE_ASSIGN_OR_RETURN(ExprPtr r, ParseExpr(level + 1));
          l = Binary(std::move(op), std::move(l), std::move(r));
        }
        return l;
      }
      case 6: {
        if (IsOp("-")) {
          const size_t p = Peek().pos;
          Advance();
          SONDE_ASSIGN_OR_RETURN(ExprPtr a, ParseExpr(6));
          auto e = Make(ExprKind::kUnary, "-", p);
          e->end_pos = a->end_pos;
          e->args.push_back(std::move(a));
          return e;
        }
        return ParsePrimary();
      }
    }
    return Error(Peek().pos, "internal: bad precedence level");
  }

  StatusOr<ExprPtr> ParseComparison() {
    SONDE_ASSIGN_OR_RETURN(ExprPtr l, ParseExpr(4));
    bool negated = false;
    if (IsKeyword("NOT") && (IsKeyword("IN", 1) || IsKeyword("LIKE", 1) || IsKeyword("BETWEEN", 1))) {
      negated = true;
      Advance();
    }
    if (IsKeyword("IN")) {
      Advance();
      SONDE_RETURN_IF_ERROR(ExpectOp("("));
      auto e = Make(ExprKind::kIn, "IN", l->pos);
      e->negated = negated;
      e->args.push_back(std::move(l));
      if (IsKeyword("SELECT")) return Error(Peek().pos, "subqueries are not supported");
      SONDE_RETURN_IF_ERROR(ParseExprList(&e->args));
      SONDE_RETURN_IF_ERROR(ExpectOp(")"));
      e->end_pos = PrevEnd();
      return e;
    }
    if (IsKeyword("BETWEEN")) {
      Advance();
      auto e = Make(ExprKind::kBetween, "BETWEEN", l->pos);
      e->negated = negated;
      e->args.push_back(std::move(l));
      SONDE_ASSIGN_OR_RETURN(ExprPtr lo, ParseExpr(4));
      SONDE_RETURN_IF_ERROR(ExpectKeyword("AND"));
      SONDE_ASSIGN_OR_RETURN(ExprPtr hi, ParseExpr(4));
      e->end_pos = hi->end_pos;
      e->args.push_back(std::move(lo));
      e->args.push_back(std::move(hi));
      return e;
    }
    if (IsKeyword("LIKE")) {
      Advance();
      SONDE_ASSIGN_OR_RETURN(ExprPtr r, ParseExpr(4));
      auto e = Binary("LIKE", std::move(l), std::move(r));
      e->negated = negated;
      return e;
    }
    if (negated) return Error(Peek().pos, "expected IN, LIKE or BETWEEN after NOT");
    static constexpr std::string_view kCmp[] = {"=", "!=", "<", "<=", ">", ">="};
    for (auto op : kCmp) {
      if (IsOp(op)) {
        Advance();
        SONDE_ASSIGN_OR_RETURN(ExprPtr r, ParseExpr(4));
        return Binary(std::string(op), std::move(l), std::move(r));
      }
    }
    return l;
  }

  StatusOr<ExprPtr> ParsePrimary() {
    const Token& t = Peek();
    const size_t p = t.pos;
    switch (t.kind) {
      case TokenKind::kNumber: {
        auto e = Make(ExprKind::kNumber, t.text, p);
        Advance();
        e->end_pos = PrevEnd();
        return e;
      }
      case TokenKind::kString: {
        auto e = Make(ExprKind::kString, t.text, p);
        Advance();
        e->end_pos = PrevEnd();
        return e;
      }
      case TokenKind::kOperator:
        if (t.text == "(") {
          Advance();
          if (IsKeyword("SELECT")) return Error(Peek().pos, "subqueries are not supported");
          SONDE_ASSIGN_OR_RETURN(ExprPtr e, ParseExpr(0));
          SONDE_RETURN_IF_ERROR(ExpectOp(")"));
          e->pos = p;
          e->end_pos = PrevEnd();
          return e;
        }
        if (t.text == "*") {
          auto e = Make(ExprKind::kStar, "*", p);
          e->end_pos = p + 1;
          Advance();
          return e;
        }
        break;
      case TokenKind::kIdentifier:
      case TokenKind::kQuotedIdentifier: {
        if (t.kind == TokenKind::kIdentifier && IsReserved(t.text)) break;
        // Function call: name '(' args ')'.
        if (t.kind == TokenKind::kIdentifier && Peek(1).kind == TokenKind::kOperator &&
            Peek(1).text == "(") {
          auto e = Make(ExprKind::kCall, t.text, p);
          Advance();
          Advance();
          if (IsKeyword("DISTINCT")) {
            e->distinct = true;
            Advance();
          }
          if (!IsOp(")")) SONDE_RETURN_IF_ERROR(ParseExprList(&e->args));
          SONDE_RETURN_IF_ERROR(ExpectOp(")"));
          e->end_pos = PrevEnd();
          return e;
        }
        SONDE_ASSIGN_OR_RETURN(std::string name, ParseDottedName("a column"));
        auto e = Make(ExprKind::kColumn, std::move(name), p);
        e->end_pos = PrevEnd();
        return e;
      }
      case TokenKind::kEnd:
        break;
    }
    return Error(p, "expected an expression" + Found());
  }

  std::string_view sql_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

StatusOr<Statement> Parse(std::string_view sql) {
  SONDE_ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(sql));
  Parser p(sql, std::move(tokens));
  return p.ParseStatement();
}

}  // namespace sonde::server::query
