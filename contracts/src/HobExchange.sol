// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// The subset of ERC-20 the vault calls.
interface IERC20 {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// hob's vault and settlement contract.
///
/// Orders match off-chain; every trade settles here with 2-of-2 signing: each order carries its
/// trader's EIP-712 signature (or that of an agent key the trader authorised), and only a
/// settlement operator may submit a batch. Balances live in the vault per user and token.
/// Withdrawals need both halves too (the user's signature, the operator's transaction), except
/// through the escape hatch, which opens when no batch has settled for `escapePeriod`.
///
/// Tokens are assumed to be plain ERC-20s: no fee on transfer, no rebasing. The vault credits
/// the amount a deposit asked for.
contract HobExchange {
    // ------------------------------------------------------------------------------------
    // Types
    // ------------------------------------------------------------------------------------

    /// The signed order, exactly as the EIP-712 type `Order` (see ORDER_TYPEHASH). Only the
    /// `hashOrder` view takes it as a struct; settlement reads orders from packed calldata.
    struct Order {
        address trader;
        uint32 market;
        uint8 side; // 0 buy, 1 sell
        uint8 orderType; // 0 limit, 1 market
        uint8 timeInForce; // 0 GTC, 1 IOC, 2 FOK, 3 GTD
        bool postOnly;
        uint64 price; // quote ticks; a market order's worst price, 0 = no bound
        uint64 quantity; // base lots
        uint16 maxFeeBps;
        uint64 nonce;
        uint64 expiry; // unix seconds, 0 = never
    }

    /// A market's grid. Both sizes fit 64 bits (checked on registration) so that every
    /// amount in a batch fits well inside 256 bits and netting can run unchecked.
    struct Market {
        address base;
        uint64 baseLot; // base units per lot
        address quote;
        uint64 quoteTick; // quote units per tick per lot
    }

    /// A batch being settled: where its sections start in calldata and the per-batch memory
    /// (market grid, token table, nonce floors, fills, netted balance changes).
    struct Batch {
        uint256 marketCount;
        uint256[] marketIds;
        uint256[] baseLot;
        uint256[] quoteTick;
        uint256[] baseToken; // index into tokens
        uint256[] quoteToken; // index into tokens
        address[] tokens;
        uint256 tokenCount;
        uint256 accountsPos;
        uint256 accountCount;
        uint256[] minNonce; // per account
        uint256 ordersPos;
        uint256 orderCount;
        // Per order: bits 64..127 the lots filled before this batch, bits 0..63 the lots filled
        // including this batch so far.
        uint256[] filled;
        uint256 tradesPos;
        uint256 tradeCount;
        int256[] delta; // [account * tokenCount + token], netted over the batch
        uint256[] fees; // [token], credited to the fee collector
    }

    // ------------------------------------------------------------------------------------
    // Constants
    // ------------------------------------------------------------------------------------

    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 public constant ORDER_TYPEHASH = keccak256(
        "Order(address trader,uint32 market,uint8 side,uint8 orderType,uint8 timeInForce,bool postOnly,uint64 price,uint64 quantity,uint16 maxFeeBps,uint64 nonce,uint64 expiry)"
    );
    bytes32 public constant WITHDRAWAL_TYPEHASH =
        keccak256("Withdrawal(address user,address token,uint256 amount,uint64 nonce,uint64 expiry)");
    bytes32 public constant AGENT_AUTHORIZATION_TYPEHASH =
        keccak256("AgentAuthorization(address owner,address agent,uint64 expiry,uint64 nonce)");
    bytes32 private constant NAME_HASH = keccak256("hob");
    bytes32 private constant VERSION_HASH = keccak256("1");

    /// Bounds on the escape period: short enough that users are never locked in for long,
    /// long enough that a slow operator (a chain halt, an incident) does not open the hatch.
    uint64 public constant MIN_ESCAPE_PERIOD = 1 days;
    uint64 public constant MAX_ESCAPE_PERIOD = 30 days;

    // Sizes of the packed batch's records, in bytes (layout at `settleBatch`).
    uint256 private constant MARKET_BYTES = 4;
    uint256 private constant ACCOUNT_BYTES = 20;
    uint256 private constant ORDER_BYTES = 102;
    uint256 private constant TRADE_BYTES = 24;
    uint256 private constant ORDER_EXPIRY_AT = 30;
    uint256 private constant ORDER_R_AT = 38;
    uint256 private constant ORDER_VS_AT = 70;

    uint256 private constant BPS_DENOMINATOR = 10_000;
    uint256 private constant MASK64 = 0xFFFFFFFFFFFFFFFF;
    uint256 private constant FLAG_BITS = 0x1F;
    /// Signatures with s above half the curve order are the malleable twin of a valid one;
    /// wallets never produce them, so they are refused.
    uint256 private constant HALF_CURVE_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    // ------------------------------------------------------------------------------------
    // Storage
    // ------------------------------------------------------------------------------------

    // One slot (declared first so no address packs into it): settleBatch reads it once and
    // writes it once. Split over two slots, the write of lastSettledAt would cost a clean-slot
    // write whose price depends on whether the block time moved, which gas estimates miss.
    uint64 public nextBatchIndex;
    uint64 public lastSettledAt;
    uint64 public escapePeriod;
    bool public paused;

    address public admin;
    address public pendingAdmin;
    address public feeCollector;

    mapping(address => bool) public isOperator;
    mapping(uint32 => Market) private _markets;
    /// user => token => amount held in the vault.
    mapping(address => mapping(address => uint256)) public balances;
    /// Orders whose nonce is below this were invalidated by their trader.
    mapping(address => uint64) public minNonce;
    /// owner => agent => the time (unix seconds) the agent's authority ends.
    mapping(address => mapping(address => uint64)) public agentExpiry;
    mapping(address => mapping(uint64 => bool)) public withdrawalNonceUsed;
    mapping(address => mapping(uint64 => bool)) public agentNonceUsed;

    // Fill state of orders, by (trader, nonce). A fully filled order is one bit in a word of
    // 256 (key nonce >> 8); a partly filled one is a 64-bit lane in a word of four (key
    // nonce >> 2). Orders of one trader with nearby nonces share words, so most fills write a
    // slot that is already non-zero, and a finished order costs one bit, not a fresh slot.
    mapping(address => mapping(uint256 => uint256)) private _filledDone;
    mapping(address => mapping(uint256 => uint256)) private _filledLanes;

    uint256 private immutable _cachedChainId;
    bytes32 private immutable _cachedDomainSeparator;

    // ------------------------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------------------------

    event Deposited(address indexed user, address indexed token, uint256 amount);
    event Withdrawn(address indexed user, address indexed token, uint256 amount, uint64 nonce);
    event EscapeWithdrawn(address indexed user, address indexed token, uint256 amount);
    event BatchSettled(uint64 indexed batchIndex, uint256 tradeCount);
    event MarketRegistered(uint32 indexed market, address base, address quote, uint128 baseLot, uint128 quoteTick);
    event OperatorSet(address indexed operator, bool enabled);
    event FeeCollectorSet(address indexed feeCollector);
    event EscapePeriodSet(uint64 escapePeriod);
    event AdminTransferStarted(address indexed current, address indexed pending);
    event AdminTransferred(address indexed previous, address indexed current);
    event Paused();
    event Unpaused();
    event AgentAuthorized(address indexed owner, address indexed agent, uint64 expiry);
    event AgentRevoked(address indexed owner, address indexed agent);
    event NoncesInvalidated(address indexed user, uint64 minNonce);

    // ------------------------------------------------------------------------------------
    // Errors. Settlement errors name the failing order or trade (its index in the batch) so
    // the operator can void exactly that trade and resubmit the rest.
    // ------------------------------------------------------------------------------------

    error NotAdmin();
    error NotPendingAdmin();
    error NotOperator();
    error IsPaused();
    error ZeroAddress();
    error ZeroAmount();
    error MarketExists(uint32 market);
    error BadMarketGrid(uint32 market);
    error UnknownMarket(uint32 market);
    error BadEscapePeriod(uint64 escapePeriod);
    error TransferFailed(address token);
    error NonceNotIncreasing(uint64 current, uint64 requested);

    error BadBatchIndex(uint64 expected, uint64 got);
    error MalformedBatch();
    error AccountsNotSorted(uint256 account);
    error BadOrderEncoding(uint256 order);
    error BadSignature(uint256 order);
    error OrderExpired(uint256 order);
    error NonceInvalidated(uint256 order);
    error BadTradeEncoding(uint256 trade);
    error MarketMismatch(uint256 trade);
    error SameSide(uint256 trade);
    error PostOnlyTaker(uint256 trade);
    error PriceNotHonoured(uint256 trade);
    error Overfill(uint256 trade);
    error FeeAboveCap(uint256 trade);
    error InsufficientBalance(address user, address token);

    error WithdrawalExpired();
    error WithdrawalNonceUsed(address user, uint64 nonce);
    error BadWithdrawalSignature();
    error BadAgent();
    error AgentExpiryPassed();
    error AgentNonceUsed(address owner, uint64 nonce);
    error BadAgentSignature();
    error EscapeNotOpen(uint256 opensAt);
    error NothingToWithdraw();

    // ------------------------------------------------------------------------------------
    // Set-up and roles
    // ------------------------------------------------------------------------------------

    constructor(address feeCollector_, uint64 escapePeriod_) {
        if (feeCollector_ == address(0)) revert ZeroAddress();
        _checkEscapePeriod(escapePeriod_);
        admin = msg.sender;
        feeCollector = feeCollector_;
        escapePeriod = escapePeriod_;
        // The hatch counts from deployment, as if a batch had just settled.
        lastSettledAt = uint64(block.timestamp);
        _cachedChainId = block.chainid;
        _cachedDomainSeparator = _buildDomainSeparator();
        emit AdminTransferred(address(0), msg.sender);
        emit FeeCollectorSet(feeCollector_);
        emit EscapePeriodSet(escapePeriod_);
    }

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAdmin();
        _;
    }

    modifier onlyOperator() {
        if (!isOperator[msg.sender]) revert NotOperator();
        _;
    }

    modifier whenNotPaused() {
        if (paused) revert IsPaused();
        _;
    }

    /// Two steps, so a typo can never hand the contract to an address nobody controls.
    function transferAdmin(address newAdmin) external onlyAdmin {
        pendingAdmin = newAdmin;
        emit AdminTransferStarted(msg.sender, newAdmin);
    }

    function acceptAdmin() external {
        if (msg.sender != pendingAdmin || msg.sender == address(0)) revert NotPendingAdmin();
        emit AdminTransferred(admin, msg.sender);
        admin = msg.sender;
        pendingAdmin = address(0);
    }

    function setOperator(address operator, bool enabled) external onlyAdmin {
        if (operator == address(0)) revert ZeroAddress();
        isOperator[operator] = enabled;
        emit OperatorSet(operator, enabled);
    }

    function setFeeCollector(address collector) external onlyAdmin {
        if (collector == address(0)) revert ZeroAddress();
        feeCollector = collector;
        emit FeeCollectorSet(collector);
    }

    function setEscapePeriod(uint64 period) external onlyAdmin {
        _checkEscapePeriod(period);
        escapePeriod = period;
        emit EscapePeriodSet(period);
    }

    function pause() external onlyAdmin {
        paused = true;
        emit Paused();
    }

    function unpause() external onlyAdmin {
        paused = false;
        emit Unpaused();
    }

    /// Registers a market's tokens and grid. A market never changes once registered: signed
    /// orders refer to it by id, and their meaning must not shift under them.
    function registerMarket(uint32 marketId, address base, address quote, uint128 baseLot, uint128 quoteTick)
        external
        onlyAdmin
    {
        if (_markets[marketId].base != address(0)) revert MarketExists(marketId);
        if (base == address(0) || quote == address(0)) revert ZeroAddress();
        if (base == quote || baseLot == 0 || quoteTick == 0 || baseLot > MASK64 || quoteTick > MASK64) {
            revert BadMarketGrid(marketId);
        }
        _markets[marketId] = Market(base, uint64(baseLot), quote, uint64(quoteTick));
        emit MarketRegistered(marketId, base, quote, baseLot, quoteTick);
    }

    function markets(uint32 marketId)
        external
        view
        returns (address base, address quote, uint128 baseLot, uint128 quoteTick)
    {
        Market memory m = _markets[marketId];
        return (m.base, m.quote, m.baseLot, m.quoteTick);
    }

    // ------------------------------------------------------------------------------------
    // Vault
    // ------------------------------------------------------------------------------------

    function deposit(address token, uint256 amount) external whenNotPaused {
        if (amount == 0) revert ZeroAmount();
        _callToken(token, abi.encodeCall(IERC20.transferFrom, (msg.sender, address(this), amount)));
        balances[msg.sender][token] += amount;
        emit Deposited(msg.sender, token, amount);
    }

    /// The operator half of a withdrawal: it carries the user's own signature over
    /// `Withdrawal`. An agent's signature is never enough: agents trade, they do not move
    /// funds out.
    function withdraw(
        address user,
        address token,
        uint256 amount,
        uint64 nonce,
        uint64 expiry,
        bytes calldata signature
    ) external onlyOperator whenNotPaused {
        if (amount == 0) revert ZeroAmount();
        if (expiry != 0 && block.timestamp >= expiry) revert WithdrawalExpired();
        if (withdrawalNonceUsed[user][nonce]) revert WithdrawalNonceUsed(user, nonce);
        bytes32 digest = hashWithdrawal(user, token, amount, nonce, expiry);
        if (user == address(0) || _recover(digest, signature) != user) revert BadWithdrawalSignature();
        withdrawalNonceUsed[user][nonce] = true;
        uint256 balance = balances[user][token];
        if (balance < amount) revert InsufficientBalance(user, token);
        balances[user][token] = balance - amount;
        _callToken(token, abi.encodeCall(IERC20.transfer, (user, amount)));
        emit Withdrawn(user, token, amount, nonce);
    }

    /// The escape hatch: with no batch settled for `escapePeriod`, a user takes out their
    /// whole balance of `token` with no operator. It works while paused too, since a pause
    /// must never trap funds.
    function escapeWithdraw(address token) external {
        uint256 opensAt = escapeOpensAt();
        if (block.timestamp < opensAt) revert EscapeNotOpen(opensAt);
        uint256 amount = balances[msg.sender][token];
        if (amount == 0) revert NothingToWithdraw();
        balances[msg.sender][token] = 0;
        _callToken(token, abi.encodeCall(IERC20.transfer, (msg.sender, amount)));
        emit EscapeWithdrawn(msg.sender, token, amount);
    }

    function escapeOpensAt() public view returns (uint256) {
        return uint256(lastSettledAt) + escapePeriod;
    }

    // ------------------------------------------------------------------------------------
    // Traders: agents and nonce invalidation
    // ------------------------------------------------------------------------------------

    /// Lets `agent` sign orders for the caller until `expiry` (unix seconds). Agents never
    /// withdraw.
    function authorizeAgent(address agent, uint64 expiry) external {
        _authorizeAgent(msg.sender, agent, expiry);
    }

    /// The same authorisation, signed by the owner as `AgentAuthorization` and submitted by
    /// anyone (typically the operator, so a new agent needs no gas from the user).
    function authorizeAgentBySig(address owner, address agent, uint64 expiry, uint64 nonce, bytes calldata signature)
        external
    {
        if (agentNonceUsed[owner][nonce]) revert AgentNonceUsed(owner, nonce);
        bytes32 digest = hashAgentAuthorization(owner, agent, expiry, nonce);
        if (owner == address(0) || _recover(digest, signature) != owner) revert BadAgentSignature();
        agentNonceUsed[owner][nonce] = true;
        _authorizeAgent(owner, agent, expiry);
    }

    function revokeAgent(address agent) external {
        delete agentExpiry[msg.sender][agent];
        emit AgentRevoked(msg.sender, agent);
    }

    /// Invalidates every order of the caller with a nonce below `nonce`, for good: a
    /// cancelled order can then never settle, even if the operator were compromised.
    function invalidateNoncesBelow(uint64 nonce) external {
        uint64 current = minNonce[msg.sender];
        if (nonce <= current) revert NonceNotIncreasing(current, nonce);
        minNonce[msg.sender] = nonce;
        emit NoncesInvalidated(msg.sender, nonce);
    }

    /// How much of the order (trader, nonce) has settled: `done` once fully filled, else the
    /// lots filled so far.
    function orderFill(address trader, uint64 nonce) external view returns (bool done, uint64 filledLots) {
        done = _isDone(trader, nonce);
        filledLots = uint64(_lane(trader, nonce));
    }

    function _authorizeAgent(address owner, address agent, uint64 expiry) private {
        if (agent == address(0) || agent == owner) revert BadAgent();
        if (expiry <= block.timestamp) revert AgentExpiryPassed();
        agentExpiry[owner][agent] = expiry;
        emit AgentAuthorized(owner, agent, expiry);
    }

    // ------------------------------------------------------------------------------------
    // Settlement
    // ------------------------------------------------------------------------------------

    /// Settles a batch of trades. `batchIndex` must be exactly `nextBatchIndex`, so a batch
    /// replayed or submitted twice reverts with `BadBatchIndex`.
    ///
    /// `data` is packed (big-endian, no padding) because calldata is the dominant cost:
    ///
    ///     u8  marketCount,  marketCount  x u32 marketId
    ///     u16 accountCount, accountCount x address (20 bytes), strictly ascending
    ///     u16 orderCount,   orderCount   x order (102 bytes)
    ///     u16 tradeCount,   tradeCount   x trade (24 bytes)
    ///
    ///     order: u16 account index, u8 market index,
    ///            u8 flags (bit 0 side: 1 sell; bit 1 orderType: 1 market; bits 2-3
    ///            timeInForce; bit 4 postOnly; bits 5-7 zero),
    ///            u64 price, u64 quantity, u16 maxFeeBps, u64 nonce, u64 expiry,
    ///            bytes32 r, bytes32 yParityAndS (EIP-2098 compact signature)
    ///     trade: u16 maker order index, u16 taker order index, u64 price (ticks),
    ///            u64 quantity (lots), u16 makerFeeBps, u16 takerFeeBps
    ///
    /// Each trader and each order appears once however many trades use it. Orders are sorted
    /// strictly by (account index, nonce), so no order can appear twice.
    function settleBatch(uint64 batchIndex, bytes calldata data) external onlyOperator whenNotPaused {
        uint64 expected = nextBatchIndex;
        if (batchIndex != expected) revert BadBatchIndex(expected, batchIndex);
        Batch memory b = _decodeBatch(data);
        _checkOrders(b);
        _applyTrades(b);
        _recordFills(b);
        _applyBalances(b);
        nextBatchIndex = expected + 1;
        lastSettledAt = uint64(block.timestamp);
        emit BatchSettled(batchIndex, b.tradeCount);
    }

    /// Reads the section headers, the market table (with its tokens) and the accounts' nonce
    /// floors, and checks the lengths add up exactly.
    function _decodeBatch(bytes calldata data) private view returns (Batch memory b) {
        uint256 pos;
        assembly {
            pos := data.offset
        }
        uint256 end = pos + data.length;
        if (data.length < 1) revert MalformedBatch();
        uint256 marketCount = _load(pos, 1);
        pos += 1;
        if (marketCount == 0 || pos + marketCount * MARKET_BYTES + 2 > end) revert MalformedBatch();
        _loadMarkets(b, pos, marketCount);
        pos += marketCount * MARKET_BYTES;

        uint256 accountCount = _load(pos, 2);
        pos += 2;
        if (accountCount == 0 || pos + accountCount * ACCOUNT_BYTES + 2 > end) revert MalformedBatch();
        _loadAccounts(b, pos, accountCount);
        pos += accountCount * ACCOUNT_BYTES;

        uint256 orderCount = _load(pos, 2);
        pos += 2;
        if (orderCount < 2 || pos + orderCount * ORDER_BYTES + 2 > end) revert MalformedBatch();
        b.ordersPos = pos;
        b.orderCount = orderCount;
        b.filled = new uint256[](orderCount);
        pos += orderCount * ORDER_BYTES;

        uint256 tradeCount = _load(pos, 2);
        pos += 2;
        if (tradeCount == 0 || pos + tradeCount * TRADE_BYTES != end) revert MalformedBatch();
        b.tradesPos = pos;
        b.tradeCount = tradeCount;

        b.delta = new int256[](accountCount * b.tokenCount);
        b.fees = new uint256[](b.tokenCount);
    }

    function _loadMarkets(Batch memory b, uint256 pos, uint256 count) private view {
        b.marketCount = count;
        b.marketIds = new uint256[](count);
        b.baseLot = new uint256[](count);
        b.quoteTick = new uint256[](count);
        b.baseToken = new uint256[](count);
        b.quoteToken = new uint256[](count);
        b.tokens = new address[](2 * count);
        for (uint256 i; i < count; ++i) {
            uint32 id = uint32(_load(pos + i * MARKET_BYTES, MARKET_BYTES));
            Market memory m = _markets[id];
            if (m.base == address(0)) revert UnknownMarket(id);
            b.marketIds[i] = id;
            b.baseLot[i] = m.baseLot;
            b.quoteTick[i] = m.quoteTick;
            b.baseToken[i] = _tokenIndex(b, m.base);
            b.quoteToken[i] = _tokenIndex(b, m.quote);
        }
    }

    /// The token's index in the batch's token table, adding it if new. The table holds at
    /// most two tokens per market, so the linear search is short.
    function _tokenIndex(Batch memory b, address token) private pure returns (uint256) {
        uint256 n = b.tokenCount;
        for (uint256 i; i < n; ++i) {
            if (b.tokens[i] == token) return i;
        }
        b.tokens[n] = token;
        b.tokenCount = n + 1;
        return n;
    }

    function _loadAccounts(Batch memory b, uint256 pos, uint256 count) private view {
        b.accountsPos = pos;
        b.accountCount = count;
        b.minNonce = new uint256[](count);
        uint256 previous; // ascending from 0 also refuses the zero address
        for (uint256 i; i < count; ++i) {
            uint256 account = _load(pos + i * ACCOUNT_BYTES, ACCOUNT_BYTES);
            if (account <= previous) revert AccountsNotSorted(i);
            previous = account;
            b.minNonce[i] = minNonce[address(uint160(account))];
        }
    }

    /// Per order: encoding, order of listing, expiry, nonce floor, signature; then loads what
    /// earlier batches filled.
    function _checkOrders(Batch memory b) private view {
        bytes32 domain = _domainSeparator();
        uint256 previousKey;
        for (uint256 i; i < b.orderCount; ++i) {
            previousKey = _checkOrder(b, i, domain, previousKey);
        }
    }

    /// Checks order `i` and returns its sort key, which must be above the previous order's.
    function _checkOrder(Batch memory b, uint256 i, bytes32 domain, uint256 previousKey)
        private
        view
        returns (uint256 key)
    {
        uint256 p = b.ordersPos + i * ORDER_BYTES;
        uint256 w = _word(p);
        uint256 account = w >> 240;
        uint256 nonce = (w >> 16) & MASK64;
        uint256 quantity = (w >> 96) & MASK64;
        if (
            account >= b.accountCount || ((w >> 232) & 0xFF) >= b.marketCount || ((w >> 224) & 0xFF) & ~FLAG_BITS != 0
                || quantity == 0
        ) revert BadOrderEncoding(i);
        // Keyed so that 0 means "none yet"; strictly ascending means each (trader, nonce) once.
        key = ((account << 64) | nonce) + 1;
        if (key <= previousKey) revert BadOrderEncoding(i);

        uint256 expiry = _load(p + ORDER_EXPIRY_AT, 8);
        if (expiry != 0 && block.timestamp >= expiry) revert OrderExpired(i);
        if (nonce < b.minNonce[account]) revert NonceInvalidated(i);

        address trader = _account(b, account);
        _checkSigner(b, i, trader, expiry, domain);
        // A finished order counts as filled to its quantity, so any trade on it overfills.
        uint256 before = _isDone(trader, nonce) ? quantity : _lane(trader, nonce);
        b.filled[i] = (before << 64) | before;
    }

    /// The order must be signed by its trader, or by an agent the trader authorised that has
    /// not expired.
    function _checkSigner(Batch memory b, uint256 i, address trader, uint256 expiry, bytes32 domain)
        private
        view
    {
        uint256 p = b.ordersPos + i * ORDER_BYTES;
        uint256 w = _word(p);
        bytes32 structHash = _orderStructHash(trader, b.marketIds[(w >> 232) & 0xFF], w, expiry);
        bytes32 digest = _hashTyped(domain, structHash);
        address signer = _recoverCompact(digest, bytes32(_word(p + ORDER_R_AT)), bytes32(_word(p + ORDER_VS_AT)));
        // The trader is never the zero address (accounts ascend from above 0), so a failed
        // recovery (address 0) matches neither the trader nor, below, an agent.
        if (signer != trader && (signer == address(0) || agentExpiry[trader][signer] <= block.timestamp)) {
            revert BadSignature(i);
        }
    }

    /// Per trade: the two orders fit together, prices and fee caps hold, fills stay within
    /// the signed quantities; then the trade's amounts are netted into the batch's deltas.
    function _applyTrades(Batch memory b) private pure {
        for (uint256 t; t < b.tradeCount; ++t) {
            uint256 w = _word(b.tradesPos + t * TRADE_BYTES);
            uint256 makerIndex = w >> 240;
            uint256 takerIndex = (w >> 224) & 0xFFFF;
            uint256 price = (w >> 160) & MASK64;
            uint256 quantity = (w >> 96) & MASK64;
            if (makerIndex >= b.orderCount || takerIndex >= b.orderCount || price == 0 || quantity == 0) {
                revert BadTradeEncoding(t);
            }
            uint256 maker = _word(b.ordersPos + makerIndex * ORDER_BYTES);
            uint256 taker = _word(b.ordersPos + takerIndex * ORDER_BYTES);
            if (((maker ^ taker) >> 232) & 0xFF != 0) revert MarketMismatch(t);
            if (((maker ^ taker) >> 224) & 1 == 0) revert SameSide(t);
            if ((taker >> 228) & 1 != 0) revert PostOnlyTaker(t);
            if (!_honours(maker, price) || !_honours(taker, price)) revert PriceNotHonoured(t);
            uint256 makerFeeBps = (w >> 80) & 0xFFFF;
            uint256 takerFeeBps = (w >> 64) & 0xFFFF;
            if (
                makerFeeBps > ((maker >> 80) & 0xFFFF) || takerFeeBps > ((taker >> 80) & 0xFFFF)
                    || makerFeeBps > BPS_DENOMINATOR || takerFeeBps > BPS_DENOMINATOR
            ) revert FeeAboveCap(t);
            _fill(b, makerIndex, maker, quantity, t);
            _fill(b, takerIndex, taker, quantity, t);
            _net(b, maker, taker, w);
        }
    }

    /// Whether trading at `price` honours the order's limit. A market order with price 0
    /// accepted any price; otherwise its price is the worst it accepts, like a limit.
    function _honours(uint256 order, uint256 price) private pure returns (bool) {
        uint256 limit = (order >> 160) & MASK64;
        if ((order >> 225) & 1 == 1 && limit == 0) return true;
        return (order >> 224) & 1 == 0 ? price <= limit : price >= limit;
    }

    function _fill(Batch memory b, uint256 index, uint256 order, uint256 quantity, uint256 trade) private pure {
        uint256 packed = b.filled[index];
        uint256 total = (packed & MASK64) + quantity;
        if (total > ((order >> 96) & MASK64)) revert Overfill(trade);
        b.filled[index] = (packed & ~MASK64) | total;
    }

    /// Adds one trade's balance changes (`w` is the packed trade) to the batch's deltas.
    /// Exact integers: base = quantity * baseLot, notional = price * quantity * quoteTick,
    /// fee = floor(notional * bps / 10000), both fees in the quote token.
    function _net(Batch memory b, uint256 maker, uint256 taker, uint256 w) private pure {
        // Unchecked is safe: price, quantity, baseLot and quoteTick are each below 2^64, so a
        // notional is below 2^192, a notional times a fee rate (at most 10^4) below 2^206,
        // and a batch of at most 2^16 trades moves less than 2^210 in any delta.
        unchecked {
            uint256 market = (maker >> 232) & 0xFF;
            uint256 quantity = (w >> 96) & MASK64;
            uint256 baseAmount = quantity * b.baseLot[market];
            uint256 notional = ((w >> 160) & MASK64) * quantity * b.quoteTick[market];
            uint256 makerFee = notional * ((w >> 80) & 0xFFFF) / BPS_DENOMINATOR;
            uint256 takerFee = notional * ((w >> 64) & 0xFFFF) / BPS_DENOMINATOR;
            b.fees[b.quoteToken[market]] += makerFee + takerFee;
            if ((maker >> 224) & 1 == 0) {
                _move(b, market, maker >> 240, taker >> 240, baseAmount, notional + makerFee, notional - takerFee);
            } else {
                _move(b, market, taker >> 240, maker >> 240, baseAmount, notional + takerFee, notional - makerFee);
            }
        }
    }

    /// The buyer pays quote and receives base; the seller the reverse (accounts by index).
    function _move(
        Batch memory b,
        uint256 market,
        uint256 buyer,
        uint256 seller,
        uint256 baseAmount,
        uint256 buyerPays,
        uint256 sellerGets
    ) private pure {
        // Unchecked: every amount is below 2^207 (see _net).
        unchecked {
            uint256 tokens = b.tokenCount;
            uint256 baseToken = b.baseToken[market];
            uint256 quoteToken = b.quoteToken[market];
            b.delta[buyer * tokens + quoteToken] -= int256(buyerPays);
            b.delta[buyer * tokens + baseToken] += int256(baseAmount);
            b.delta[seller * tokens + baseToken] -= int256(baseAmount);
            b.delta[seller * tokens + quoteToken] += int256(sellerGets);
        }
    }

    /// Writes each touched order's fill: a finished order sets its done bit (and frees its
    /// lane, if an earlier batch had used it); a partial one updates its lane.
    function _recordFills(Batch memory b) private {
        for (uint256 i; i < b.orderCount; ++i) {
            uint256 packed = b.filled[i];
            uint256 total = packed & MASK64;
            uint256 before = packed >> 64;
            if (total == before) continue;
            uint256 w = _word(b.ordersPos + i * ORDER_BYTES);
            address trader = _account(b, w >> 240);
            uint256 nonce = (w >> 16) & MASK64;
            uint256 laneShift = (nonce & 3) * 64;
            if (total == (w >> 96) & MASK64) {
                _filledDone[trader][nonce >> 8] |= 1 << (nonce & 0xFF);
                if (before != 0) _filledLanes[trader][nonce >> 2] &= ~(MASK64 << laneShift);
            } else {
                uint256 lanes = _filledLanes[trader][nonce >> 2];
                _filledLanes[trader][nonce >> 2] = (lanes & ~(MASK64 << laneShift)) | (total << laneShift);
            }
        }
    }

    /// Applies the netted deltas: one read and one write per (user, token) the batch touched,
    /// then the fees. A user's net debit beyond their balance reverts the whole batch.
    function _applyBalances(Batch memory b) private {
        uint256 tokens = b.tokenCount;
        for (uint256 a; a < b.accountCount; ++a) {
            address user = _account(b, a);
            for (uint256 k; k < tokens; ++k) {
                int256 d = b.delta[a * tokens + k];
                if (d == 0) continue;
                address token = b.tokens[k];
                uint256 balance = balances[user][token];
                if (d < 0) {
                    // |d| < 2^210 (see _net), so the negation cannot overflow.
                    uint256 debit = uint256(-d);
                    if (balance < debit) revert InsufficientBalance(user, token);
                    balances[user][token] = balance - debit;
                } else {
                    balances[user][token] = balance + uint256(d);
                }
            }
        }
        address collector = feeCollector;
        for (uint256 k; k < tokens; ++k) {
            if (b.fees[k] != 0) balances[collector][b.tokens[k]] += b.fees[k];
        }
    }

    function _account(Batch memory b, uint256 index) private pure returns (address) {
        return address(uint160(_load(b.accountsPos + index * ACCOUNT_BYTES, ACCOUNT_BYTES)));
    }

    function _isDone(address trader, uint256 nonce) private view returns (bool) {
        return (_filledDone[trader][nonce >> 8] >> (nonce & 0xFF)) & 1 == 1;
    }

    function _lane(address trader, uint256 nonce) private view returns (uint256) {
        return (_filledLanes[trader][nonce >> 2] >> ((nonce & 3) * 64)) & MASK64;
    }

    // ------------------------------------------------------------------------------------
    // EIP-712
    // ------------------------------------------------------------------------------------

    function domainSeparator() external view returns (bytes32) {
        return _domainSeparator();
    }

    /// The EIP-712 digest a wallet signs for `order` (eth_signTypedData_v4). Written with
    /// abi.encode, independently of the packed path settlement uses, so tests comparing both
    /// against Rust catch a mistake in either.
    function hashOrder(Order calldata order) public view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                ORDER_TYPEHASH,
                order.trader,
                order.market,
                order.side,
                order.orderType,
                order.timeInForce,
                order.postOnly,
                order.price,
                order.quantity,
                order.maxFeeBps,
                order.nonce,
                order.expiry
            )
        );
        return _hashTyped(_domainSeparator(), structHash);
    }

    /// The address that signed `order` (65-byte or EIP-2098 signature), or 0 if none. Whether
    /// it may sign for the trader (itself or an unexpired agent) is `agentExpiry`'s question.
    function orderSigner(Order calldata order, bytes calldata signature) external view returns (address) {
        return _recover(hashOrder(order), signature);
    }

    function hashWithdrawal(address user, address token, uint256 amount, uint64 nonce, uint64 expiry)
        public
        view
        returns (bytes32)
    {
        bytes32 structHash = keccak256(abi.encode(WITHDRAWAL_TYPEHASH, user, token, amount, nonce, expiry));
        return _hashTyped(_domainSeparator(), structHash);
    }

    function hashAgentAuthorization(address owner, address agent, uint64 expiry, uint64 nonce)
        public
        view
        returns (bytes32)
    {
        bytes32 structHash = keccak256(abi.encode(AGENT_AUTHORIZATION_TYPEHASH, owner, agent, expiry, nonce));
        return _hashTyped(_domainSeparator(), structHash);
    }

    /// The struct hash of a packed order (`w` is its first 32 bytes): the same words
    /// abi.encode would produce, written straight to scratch memory.
    function _orderStructHash(address trader, uint256 marketId, uint256 w, uint256 expiry)
        private
        pure
        returns (bytes32 structHash)
    {
        bytes32 typeHash = ORDER_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            let flags := and(shr(224, w), 0xFF)
            mstore(m, typeHash)
            mstore(add(m, 0x20), trader)
            mstore(add(m, 0x40), marketId)
            mstore(add(m, 0x60), and(flags, 1))
            mstore(add(m, 0x80), and(shr(1, flags), 1))
            mstore(add(m, 0xA0), and(shr(2, flags), 3))
            mstore(add(m, 0xC0), and(shr(4, flags), 1))
            mstore(add(m, 0xE0), and(shr(160, w), 0xFFFFFFFFFFFFFFFF))
            mstore(add(m, 0x100), and(shr(96, w), 0xFFFFFFFFFFFFFFFF))
            mstore(add(m, 0x120), and(shr(80, w), 0xFFFF))
            mstore(add(m, 0x140), and(shr(16, w), 0xFFFFFFFFFFFFFFFF))
            mstore(add(m, 0x160), expiry)
            structHash := keccak256(m, 0x180)
        }
    }

    function _hashTyped(bytes32 domain, bytes32 structHash) private pure returns (bytes32 digest) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, hex"1901")
            mstore(add(m, 0x02), domain)
            mstore(add(m, 0x22), structHash)
            digest := keccak256(m, 0x42)
        }
    }

    /// Cached, but rebuilt if the chain id changed (a fork), so signatures for one chain
    /// never validate on another.
    function _domainSeparator() private view returns (bytes32) {
        if (block.chainid == _cachedChainId) return _cachedDomainSeparator;
        return _buildDomainSeparator();
    }

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    /// Signer of a 65-byte (r, s, v) or 64-byte EIP-2098 signature; address 0 if invalid.
    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address) {
        if (signature.length == 65) {
            uint256 v = uint8(signature[64]);
            // Some signers give v as the parity bit, not 27/28.
            if (v < 27) v += 27;
            if (v != 27 && v != 28) return address(0);
            return _recoverParts(digest, uint8(v), bytes32(signature[0:32]), bytes32(signature[32:64]));
        }
        if (signature.length == 64) {
            return _recoverCompact(digest, bytes32(signature[0:32]), bytes32(signature[32:64]));
        }
        return address(0);
    }

    function _recoverCompact(bytes32 digest, bytes32 r, bytes32 vs) private pure returns (address) {
        uint8 v = uint8((uint256(vs) >> 255) + 27);
        bytes32 s = vs & bytes32(~uint256(1 << 255));
        return _recoverParts(digest, v, r, s);
    }

    function _recoverParts(bytes32 digest, uint8 v, bytes32 r, bytes32 s) private pure returns (address) {
        if (uint256(s) > HALF_CURVE_ORDER) return address(0);
        return ecrecover(digest, v, r, s);
    }

    // ------------------------------------------------------------------------------------
    // Helpers
    // ------------------------------------------------------------------------------------

    function _checkEscapePeriod(uint64 period) private pure {
        if (period < MIN_ESCAPE_PERIOD || period > MAX_ESCAPE_PERIOD) revert BadEscapePeriod(period);
    }

    /// Calls a token and accepts both ERC-20 styles: returning true, or returning nothing.
    function _callToken(address token, bytes memory call) private {
        if (token.code.length == 0) revert TransferFailed(token);
        (bool ok, bytes memory ret) = token.call(call);
        if (!ok || (ret.length != 0 && (ret.length != 32 || abi.decode(ret, (uint256)) != 1))) {
            revert TransferFailed(token);
        }
    }

    /// The 32 bytes of calldata at absolute position `pos`.
    function _word(uint256 pos) private pure returns (uint256 w) {
        assembly {
            w := calldataload(pos)
        }
    }

    /// A big-endian unsigned integer of `size` bytes (1..32) at absolute calldata position `pos`.
    function _load(uint256 pos, uint256 size) private pure returns (uint256 v) {
        assembly {
            v := shr(sub(256, shl(3, size)), calldataload(pos))
        }
    }
}
